"""The remote backend: the app and the CLI on an existing OpenAI-compatible server (issue 14).

backend = RemoteBackend.connect(RemoteConfig("http://mac-studio.local:8080", api_key, model))
service.use(lambda: RemoteBackend.connect(config))   # on the engine thread
list_models(config)                                   # the Settings page's model picker
"""

from engine.remote.backend import RemoteBackend, list_models
from engine.remote.config import RemoteConfig, RemoteModel, is_nemo
from engine.remote.errors import RemoteError

__all__ = ["RemoteBackend", "RemoteConfig", "RemoteError", "RemoteModel", "is_nemo", "list_models"]
