"""Know-thyself judgment training: ability labels, judgment tests and metrics, and the three-phase pipeline."""
