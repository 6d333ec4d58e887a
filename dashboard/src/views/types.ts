export interface ViewContext {
  /** Awaits a request; the caller renders errors (views just throw). */
  load<T>(p: Promise<T>): Promise<T>;
  /** Anything the view must tear down when the route changes (kept for views that draw with a library). */
  charts: { destroy(): void }[];
  cleanups: (() => void)[];
  navigate(hash: string): void;
  signal: AbortSignal;
  /** Render an error (typed API error → message + what to do) into an element. */
  showError(into: HTMLElement, e: unknown): void;
}
