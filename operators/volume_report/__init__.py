"""Report of a loaded CT volume: geometry, acquisition and dose metadata, HU sanity figures, preview PNG."""
