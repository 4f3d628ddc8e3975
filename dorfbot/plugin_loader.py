"""Finding plugins, in this order:

1. the core's own commands (``builtin``, ``moderation``, ``privacy`` in ``dorfbot/``);
2. the bundled plugins, found by path at ``dorfbot/bundled_plugins``: in a checkout
   and an editable install that is a symlink to the repository's ``plugins/``
   folder, in a wheel a copy of it. They are imported under private module names
   (``dorfbot_plugin_<name>``), never as a top-level package called ``plugins``;
3. third-party plugins from the ``dorfbot.plugins`` entry-point group.

A later plugin with the same ``name`` as an earlier one is refused.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from dorfbot.plugin import Plugin

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dorfbot.plugins"


BUNDLED_PLUGINS_DIR = Path(__file__).parent / "bundled_plugins"


def bundled_plugins_dir() -> Path | None:
    """Where the bundled plugins are (the same place in a checkout, editable install and wheel)."""
    return BUNDLED_PLUGINS_DIR if BUNDLED_PLUGINS_DIR.is_dir() else None


def load_package(path: Path) -> ModuleType:
    """Import a plugin package from a folder under a private module name."""
    module_name = f"dorfbot_plugin_{path.name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(
        module_name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: not a plugin package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def plugin_classes(module: ModuleType) -> list[type[Plugin]]:
    """Plugin subclasses defined in a module (not imported into it)."""
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Plugin)
        and obj is not Plugin
        and obj.name
        and obj.__module__.startswith(module.__name__)
    ]


def bundled_plugin(name: str) -> type[Plugin]:
    """One bundled plugin class by folder name (used by tests and tools)."""
    folder = bundled_plugins_dir()
    if folder is None:
        raise ImportError("bundled plugins not found")
    classes = plugin_classes(load_package(folder / name))
    if not classes:
        raise ImportError(f"plugin {name}: no Plugin subclass found")
    return classes[0]


def discover() -> list[type[Plugin]]:
    """All plugin classes, built-in first, then bundled, then entry points."""
    from dorfbot.builtin import CorePlugin
    from dorfbot.moderation import ModerationPlugin
    from dorfbot.privacy import PrivacyPlugin

    found: list[type[Plugin]] = [CorePlugin, ModerationPlugin, PrivacyPlugin]
    folder = bundled_plugins_dir()
    if folder is not None:
        for path in sorted(p for p in folder.iterdir() if (p / "__init__.py").is_file()):
            found.extend(plugin_classes(load_package(path)))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception:
            log.exception("plugin entry point %s could not be loaded", ep.name)
            continue
        if inspect.isclass(obj) and issubclass(obj, Plugin):
            found.append(obj)
        elif isinstance(obj, ModuleType):
            found.extend(plugin_classes(obj))
    unique: dict[str, type[Plugin]] = {}
    for cls in found:
        if cls.name in unique:
            log.warning("plugin %s from %s ignored: name taken", cls.name, cls.__module__)
            continue
        unique[cls.name] = cls
    return list(unique.values())


def locales_dir(cls: type[Plugin]) -> Path:
    """The ``locales`` folder beside a plugin's module."""
    module = sys.modules[cls.__module__]
    return Path(module.__file__ or ".").resolve().parent / "locales"


def templates_dir(cls: type[Plugin]) -> Path:
    """The ``templates`` folder beside a plugin's module (web page sections)."""
    return locales_dir(cls).parent / "templates"
