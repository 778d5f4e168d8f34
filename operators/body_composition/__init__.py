"""Body composition: 7-class 3D U-Net inference, waist / L3 metrics and sarcopenia flags (domain modules) and
the operator (operator.py). Domain modules import no holoscan."""
