"""Model runtime for steering and training: model loading (steering.model), hook points (steering.hooks),
SAE directions and interventions, generation and flow-graph steering. Import submodules directly; this
package import stays light (no torch)."""
