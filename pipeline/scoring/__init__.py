"""Answer quality: metrics as pure functions and multiple-choice parsing."""
