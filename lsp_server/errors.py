"""Errors Gearshift reports to the user in one clear line (with the fix where there is one)."""


class GearshiftError(Exception):
    """Base of every error that should reach the user as a message, not a traceback."""


class ModelError(GearshiftError):
    """A model is missing, corrupt, not a GGUF file, or cannot be loaded."""


class EngineError(GearshiftError):
    """The inference engine was asked for something it cannot do (bad settings, context overflow)."""


class CloudError(GearshiftError):
    """The cloud model is unavailable, not configured, or refused the request."""


class RequestRefused(GearshiftError):
    """The request cannot be answered as asked (an empty selection, an unknown kind); sent back as InvalidParams."""


class EndpointUnavailable(EngineError):
    """A team endpoint gave no usable answer (down, refusing, not speaking its API); the next rung answers."""
