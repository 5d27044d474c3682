# Contrastive pretraining of the tiny CLIP of the toy configs
# (clip_tiny.py): open_clip's ClipLoss, gathered across ranks, CLIP's
# learnable temperature; the export (tools/model_converters/export_clip.py)
# is what their pretrained= loads.
_base_ = ['./clip_preprocessor.py', './clip_tiny.py']
model = dict(
    type='CLIPPretrainer',
    arch=_base_.tiny_clip,
    data_preprocessor=dict(_base_.data_preprocessor, size=(128, 128)),
    local_loss=True,
    gather_with_grad=True,
    prompt_templates=['a {}.', 'a photo of a {}.', 'a picture of a {}.',
                      'an image of a {}.'])
