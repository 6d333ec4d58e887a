"""The training job's checkpoint: the bank and optimiser (``BankTrainer.state_dict``) plus how far the data
stream got, so an interrupted run resumes on the same data order (training.loop's invariants)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.sae import BankTrainer

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class StreamPosition:
    """How much of the job is done: sequences consumed from the shuffled stream, tokens trained (both phases),
    and the step at which phase 1 ended (None while in phase 1)."""

    consumed_seqs: int = 0
    tokens_trained: int = 0
    phase1_steps: int | None = None


@dataclass
class Checkpointer:
    path: Path
    spec_hash: str
    trainer: BankTrainer
    every: int
    last_step: int = 0

    def resume(self, atlas: str) -> StreamPosition:
        """Load the checkpoint into the trainer if it was written for this spec; where to continue."""
        import torch

        pos = StreamPosition()
        if self.path.is_file():
            state = torch.load(self.path, weights_only=False)
            if state.get("spec_hash") == self.spec_hash:
                self.trainer.load_state_dict(state["trainer"])
                pos = StreamPosition(
                    int(state["consumed_seqs"]), int(state["tokens_trained"]), state.get("phase1_steps")
                )
                log.info(
                    "resuming %s from step %d (%d tokens trained)", atlas, self.trainer.step_no, pos.tokens_trained
                )
            else:
                log.warning("ignoring checkpoint %s: it was written for another spec", self.path)
        self.last_step = self.trainer.step_no
        return pos

    def resume_nothing(self) -> StreamPosition:
        """Start from step 0 whatever checkpoint exists (``resume=False``); it is overwritten at the next save."""
        self.last_step = self.trainer.step_no
        return StreamPosition()

    def maybe_save(self, pos: StreamPosition) -> None:
        """Save when ``every`` steps have passed since the last save (or the resume point)."""
        if self.trainer.step_no - self.last_step >= self.every:
            self.last_step = self.trainer.step_no
            self.save(pos)

    def save(self, pos: StreamPosition) -> None:
        import torch

        torch.save(
            {
                "spec_hash": self.spec_hash,
                "trainer": self.trainer.state_dict(),
                "consumed_seqs": pos.consumed_seqs,
                "tokens_trained": pos.tokens_trained,
                "phase1_steps": pos.phase1_steps,
            },
            self.path,
        )

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()
