"""Selenium end-to-end tests of the chat against real ``runcomet`` processes."""
