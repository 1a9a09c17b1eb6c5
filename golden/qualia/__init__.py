"""The rules for reading Qualia: quantizer formats, neuron specs, the stack, snapshots, deployment (a leaf)."""
