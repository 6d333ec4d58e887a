"""An offline AxBench-style steering benchmark (issue 25): concepts with held-out detection gates, one
strength axis for every method, scores no degenerate text can game, settings chosen on validation and the
test set read once. Modules: ``concepts`` (concepts, prompts, data), ``scores``, ``methods``,
``protocol`` (gate, selection, test, bootstrap), ``report``, ``run`` (the pipeline the CLI calls)."""
