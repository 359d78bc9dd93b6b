"""The exception hierarchy of imcflow.

Every error a user can cause derives from :class:`ImcflowError`; configuration mistakes also derive from
:class:`ValueError` so that generic callers can catch them the usual way. Messages name the field, the
value received and what is allowed.
"""
from __future__ import annotations


class ImcflowError(Exception):
    """Base class of every error imcflow raises on purpose."""


class ConfigError(ImcflowError, ValueError):
    """A user-supplied value (layer field, array size, option) is out of its allowed range."""


class UnknownNameError(ConfigError, KeyError):
    """A name (model, method, preset, dataset) that no registry knows; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class UnsupportedLayerError(ImcflowError):
    """A network contains operators with weights that imcflow cannot map; lists all of them."""


class FormatError(ConfigError):
    """A network, preset or data file is malformed; the message names the file, line and field."""


class OutputPathError(ConfigError):
    """An output file or folder cannot be written (missing folder, a directory where a file is needed,
    no permission) or would overwrite an input; raised before any work starts."""


class RunFolderError(ConfigError):
    """A run folder holds another run (or a finished one) and neither resuming nor overwriting was
    asked, or a resume would mix two configurations; the message names the differences."""


class CorruptFileError(FormatError):
    """A checkpoint or model file fails its content check (damaged, truncated or edited)."""


class TrainingDivergedError(ImcflowError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class DataNotFoundError(ImcflowError, FileNotFoundError):
    """A dataset's files are missing; the message says where they go and how to get them."""


# Argument checks live in imcflow.validate (shared by the API and the CLI); re-exported here for the
# modules that import them from errors. Imported last: validate needs the classes above.
from imcflow.validate import check_int  # noqa: E402

__all__ = ["ImcflowError", "ConfigError", "UnknownNameError", "UnsupportedLayerError", "FormatError",
           "DataNotFoundError", "check_int"]
