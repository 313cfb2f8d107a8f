"""Watch-officer console: a live alert board with evidence, acknowledge/claim and silences."""
