"""Stream processing: a pure aggregation core plus the faust-streaming wiring."""
