"""mesm_core.errors: one root, two kinds; every concrete error keeps its name, message and old base."""

from __future__ import annotations

import pickle

import pytest

from mesm_core.errors import FileInputError, InputError, MesmError, MissingResourceError


def _classes():
    from mesm_core.checkpoint import CheckpointError
    from mesm_core.data import errors as data_errors
    from mesm_core.features.cache import FeatureCacheError
    from mesm_core.features.text import GloveUnavailableError
    from mesm_core.features.visual import FaceModelUnavailableError
    from mesm_core.models.text import TextLoadError
    from mesm_core.distributed import DeviceError
    from mesm_viz.studio import UserInputError

    clip_errors = [getattr(data_errors, n) for n in data_errors.__all__ if n not in ("DataSourceError",)]
    return [
        *[(cls, InputError, ValueError) for cls in clip_errors],
        (data_errors.DataSourceError, InputError, ValueError),
        (CheckpointError, InputError, RuntimeError),
        (FeatureCacheError, InputError, ValueError),
        (DeviceError, InputError, RuntimeError),
        (UserInputError, InputError, ValueError),
        (GloveUnavailableError, MissingResourceError, RuntimeError),
        (FaceModelUnavailableError, MissingResourceError, RuntimeError),
        (TextLoadError, MissingResourceError, RuntimeError),
    ]


@pytest.mark.parametrize("cls, kind, builtin", _classes(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_error_has_its_kind_and_its_old_base(cls, kind, builtin):
    assert issubclass(cls, kind) and issubclass(cls, MesmError) and issubclass(cls, builtin)
    assert not (issubclass(cls, InputError) and issubclass(cls, MissingResourceError))


@pytest.mark.parametrize("path, text", [("clip.mp4", "clip.mp4: broken"), (None, "<memory>: broken")])
def test_file_errors_name_the_file_and_survive_pickling(path, text):
    from mesm_core.data.errors import CorruptRecordError, UnreadableMediaError

    for cls in (UnreadableMediaError, CorruptRecordError, FileInputError):
        error = cls(path, "broken")
        assert str(error) == text and error.reason == "broken"
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is cls and str(again) == text and again.path == error.path
