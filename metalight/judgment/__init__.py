"""Know-thyself judgment training: ability labels, asking and scoring judgments, the three-phase pipeline."""
