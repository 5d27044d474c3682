# CLIP's pixel statistics (0-255 RGB), shared by every model; the CLIP
# models also resize (padding) the batch to their input size.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[122.7709, 116.7460, 104.0937],
    std=[68.5005, 66.6322, 70.3232],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
