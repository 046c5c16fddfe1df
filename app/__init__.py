"""Entry points: the command line and the HTTP service. They sit above the flows they
schedule and the pipeline they drive; nothing below imports them."""
