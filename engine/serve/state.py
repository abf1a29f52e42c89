"""What both dialects share: the service, the settings, the served name and the job counter."""

from __future__ import annotations

from engine.backend import ModelInfo
from engine.serve.bridge import ApiJobs
from engine.serve.config import ApiConfig
from engine.serve.errors import ApiError
from engine.serve.naming import accepted_names, served_name
from engine.service import EngineService


class ApiState:
    def __init__(self, service: EngineService, config: ApiConfig):
        self.service = service
        self.config = config  # generation fields may be replaced while serving
        self.jobs = ApiJobs(service)

    def info(self) -> ModelInfo:
        info = self.service.info
        if info is None:
            raise ApiError(503, "No model is loaded.", code="model_not_loaded")
        return info

    @property
    def model_name(self) -> str:
        return self.config.model_name or served_name(self.service.info)

    def check_model(self, name: object) -> str:
        """The served name if `name` means it (or is missing); 404 otherwise."""
        info = self.info()
        if name is None or name == "":
            return self.model_name
        if not isinstance(name, str):
            raise ApiError(400, "model must be a string", code="invalid_request", param="model")
        if name.lower() not in accepted_names(self.model_name, info):
            raise ApiError(
                404,
                f"model '{name}' not found; this server serves '{self.model_name}'",
                code="model_not_found",
                param="model",
            )
        return self.model_name
