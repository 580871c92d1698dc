"""Static files of `speechrnn serve`: the browser demo page."""
