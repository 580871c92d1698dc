"""Online handwriting ("ink"): the Ink type and its file formats (readers.py, unipen.py), its features and
augmentation (features.py), and the limits on hostile input (limits.py). The public names of all four are here,
so `from speechrnn.ink import X` works."""

from .features import (DEFAULT_SPACING, FEATURE_NAMES, TIME_FEATURE, InkFeatureConfig, augment, featurize,
                       ink_features, normalize, num_ink_features, resample, resampled_points, writing_box)
from .limits import (DEFAULT_MAX_POINTS, MAX_JSON_DEPTH, InkTooLarge, check_json_depth, max_ink_points, parse_json,
                     set_max_ink_points)
from .readers import (INK_READERS, Ink, InkError, InkStore, check_ink, ink_from_dict, ink_to_dict, load_ink,
                      read_iam_ascii, read_iam_ondb, read_ink, read_inkml, read_json, write_ink_store, write_json)
from .unipen import UnipenSegment, parse_delineation, parse_unipen, read_unipen

__all__ = ["DEFAULT_MAX_POINTS", "DEFAULT_SPACING", "FEATURE_NAMES", "INK_READERS", "MAX_JSON_DEPTH", "TIME_FEATURE",
           "Ink", "InkError", "InkFeatureConfig", "InkStore", "InkTooLarge", "UnipenSegment", "augment",
           "check_ink", "check_json_depth", "featurize", "ink_features", "ink_from_dict", "ink_to_dict", "load_ink",
           "max_ink_points", "normalize", "num_ink_features", "parse_delineation", "parse_json", "parse_unipen",
           "read_iam_ascii", "read_iam_ondb", "read_ink", "read_inkml", "read_json", "read_unipen", "resample",
           "resampled_points", "set_max_ink_points", "write_ink_store", "write_json", "writing_box"]
