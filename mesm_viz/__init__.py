"""Pure visualisation functions for MESM (numpy in, numpy image or Plotly figure out; no UI).

Submodules:
  overlay      heat-map overlays with strict RGB/dtype contracts, nearest upsampling, kept-cell views, grids
  facs         FACS regions from 5 MTCNN landmarks, EMFACS prototypes, per-region attention statistics
  spectrogram  mel → dB, spectrogram images (low frequencies at the bottom), chunk grids → mel axis
  figures      Plotly figures (FLOPs, cost vs p, class probabilities, modality contributions, mel heatmap)
  report       PNG writing helpers

Import functions from their submodule (``from mesm_viz.overlay import overlay``). The package does not
re-export names: ``mesm_viz.overlay`` must stay the module, not the function of the same name.
``mesm_viz.figures`` pulls in plotly and mesm_core (torch); the other submodules need only numpy
(and pillow for labels/PNG).
"""

from mesm_viz import facs, overlay, spectrogram

__all__ = ["facs", "overlay", "spectrogram"]
