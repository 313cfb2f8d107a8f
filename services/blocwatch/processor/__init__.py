"""The stream processor: tags news as alliance / escalation events (`blocwatch process`)."""
