"""Visualisation of MESM and the attention studio. Imports mesm_core, never the reverse.

Pure drawing (numpy in, numpy image or Plotly figure out):
  overlay      heat-map overlays with strict RGB/dtype contracts, nearest upsampling, kept-cell views, grids
  facs         FACS regions from 5 MTCNN landmarks, EMFACS prototypes, per-region attention statistics
  spectrogram  mel → dB, spectrogram images (low frequencies at the bottom), chunk grids → mel axis
  figures      Plotly figures (FLOPs, cost vs p, class probabilities, modality contributions, mel heatmap)
  evaluation_figures  the top-p sweep and attention-on-cue figures of an evaluation JSON
                      (python -m mesm_viz.evaluation_figures EVAL.json)
  views        the studio's views of one Prediction (layer grid, FACS view, mel masks, numbers, cost curve)
  frames       display frames of a clip (the data pipeline's nearest-frame decoder) and face boxes
The studio and the report:
  catalog      checkpoints and sample clips the studio offers
  studio       the studio's state (StudioState, an LRU of prepared clips) and callbacks, over a Predictor
  report       the full report: PNGs + FACS statistics on top of core's report.json (python -m mesm_viz.report)
  app          the Gradio Blocks app (layout, events, error display)

Import functions from their submodule (``from mesm_viz.overlay import overlay``). The package does not
re-export names: ``mesm_viz.overlay`` must stay the module, not the function of the same name.
``mesm_viz.figures`` pulls in plotly and mesm_core (torch); the other submodules need only numpy
(and pillow for labels/PNG).
"""

from mesm_viz import facs, overlay, spectrogram

__all__ = ["facs", "overlay", "spectrogram"]
