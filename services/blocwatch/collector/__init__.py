"""The feed collector: polls RSS/Atom feeds, publishes NewsItems to `news.raw`."""
