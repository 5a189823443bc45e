"""Target profiles (device classes) and device connections."""
from .profile import Profile, list_profiles, load_profile  # noqa: F401
