"""`blocwatch up`: the whole pipeline on one machine, the demo feeds, the console views, `tail`."""
