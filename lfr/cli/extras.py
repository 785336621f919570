"""Which optional extra provides a module, so a command on a host without it says what to install in one
line instead of a traceback (`pip install lfr` is the matcher and control commands; extras add roles)."""

from __future__ import annotations

import importlib.util

# Top-level module -> the extra that installs it.
EXTRA_OF_MODULE = {
    "cv2": "camera",
    "insightface": "camera",
    "onnxruntime": "camera",
    "onnx": "camera",
    "tqdm": "camera",
    "skimage": "camera",
    "fastapi": "tablet",
    "starlette": "tablet",
    "uvicorn": "tablet",
    "argon2": "tablet",
    "multipart": "tablet",
    "python_multipart": "tablet",
    "itsdangerous": "tablet",
    "jinja2": "tablet",
    "scipy": "eval",
    "matplotlib": "eval",
    "psycopg": "postgres",
    "psycopg_binary": "postgres",
}


def extra_for(error: ModuleNotFoundError) -> str | None:
    """The extra whose absence caused `error`, or None when it is no module an extra provides."""
    top = (error.name or "").partition(".")[0]
    return EXTRA_OF_MODULE.get(top)


def install_hint(extra: str) -> str:
    return f"this needs the {extra} extra: install lfr[{extra}] (pip install 'lfr[{extra}]')"


def has_extra(extra: str) -> bool:
    """True when the main modules of `extra` can be found (without importing them)."""
    return all(_findable(module) for module in _PROBES[extra])


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ValueError, ImportError):  # ValueError: a module blanked out in sys.modules
        return False


_PROBES = {
    "camera": {"cv2", "insightface", "onnxruntime"},
    "tablet": {"fastapi", "uvicorn", "argon2", "jinja2"},
    "eval": {"scipy", "matplotlib"},
    "postgres": {"psycopg"},
}
