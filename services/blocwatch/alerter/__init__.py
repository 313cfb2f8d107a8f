"""The alerter: rules over tagged events, notifications and the `alerts` topic."""
