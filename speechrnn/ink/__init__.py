"""Online handwriting ("ink"): the Ink type and its file formats (readers.py, unipen.py), and its features and
augmentation (features.py). The public names of all three are here, so `from speechrnn.ink import X` works."""

from .features import (DEFAULT_SPACING, FEATURE_NAMES, TIME_FEATURE, InkFeatureConfig, augment, featurize,
                       ink_features, normalize, num_ink_features, resample, writing_box)
from .readers import (INK_READERS, Ink, InkError, InkStore, check_ink, ink_from_dict, ink_to_dict, load_ink,
                      read_iam_ascii, read_iam_ondb, read_ink, read_inkml, read_json, write_ink_store, write_json)
from .unipen import UnipenSegment, parse_delineation, parse_unipen, read_unipen

__all__ = ["DEFAULT_SPACING", "FEATURE_NAMES", "INK_READERS", "TIME_FEATURE", "Ink", "InkError", "InkFeatureConfig",
           "InkStore", "UnipenSegment", "augment", "check_ink", "featurize", "ink_features", "ink_from_dict",
           "ink_to_dict", "load_ink", "normalize", "num_ink_features", "parse_delineation", "parse_unipen",
           "read_iam_ascii", "read_iam_ondb", "read_ink", "read_inkml", "read_json", "read_unipen", "resample",
           "write_ink_store", "write_json", "writing_box"]
