"""A network format in one file: ``.layers``, one ``H,W,Kh,Kw,IC,OC[,stride[,padding[,groups]]]``
per line (the CLI's --layer syntax), '#' starts a comment."""
from pathlib import Path

from imcflow.layers import Network, parse_layer_spec


def read_layers_file(path, input_shape=None):
    lines = [line.split("#")[0].strip() for line in Path(path).read_text().splitlines()]
    specs = [line for line in lines if line]
    layers = tuple(parse_layer_spec(s, name=f"layer{i + 1}") for i, s in enumerate(specs))
    return Network(Path(path).stem, layers, source=str(path))
