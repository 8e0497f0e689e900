"""``python -m mesm_core.data.synthetic --out DIR --n-clips N --seed S --workers W``."""

from mesm_core.data.synthetic.generator import main

if __name__ == "__main__":
    raise SystemExit(main())
