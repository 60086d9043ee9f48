"""The one error of the drop-in: an Azure feature that has no meaning on fleetlog."""

from __future__ import annotations

from fleetlog.errors import FleetlogError

__all__ = ["NotSupportedHere"]


class NotSupportedHere(FleetlogError, NotImplementedError):
    """An Azure ML feature fleetlog does not provide (remote compute, conda or Docker builds...).

    A ``NotImplementedError`` too, so code written for Azure that guards with it keeps working;
    the message names the feature and what to do on fleetlog instead.
    """

    def __init__(self, feature: str, instead: str) -> None:
        super().__init__(f"{feature} is not supported by fleetlog.azureml: {instead}")
        self.feature = feature
