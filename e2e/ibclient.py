"""The raw IB client lives in the plugin (pytest_mockgw/ibclient.py); the tests import it from
here."""

from pytest_mockgw.ibclient import *  # noqa: F401,F403
