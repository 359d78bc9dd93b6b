"""A preset is one YAML file (my_preset.yaml: the isaac constants with a 6-bit ADC); registering it
under a name makes `--preset isaac-6b-adc` find it. A path works without registering, too."""
from pathlib import Path

from imcflow.hardware.preset import register_preset

register_preset("isaac-6b-adc", str(Path(__file__).with_name("my_preset.yaml")))
