"""The field names of a referring sample, in one place.

The dataset writes them into the data info, the transforms read and add
them, ``PackRISInputs`` packs the ``META_KEYS`` into a ``RISDataSample``'s
metainfo (and ``GT_PROPOSALS`` as a data field), and the models and metrics
read them back. Import the constants instead of spelling the strings.
"""

# Packed metainfo: the expression and its ids.
TEXT = 'text'  # the referring expression (str)
SENT_ID = 'sent_id'
REF_ID = 'ref_id'
ANN_ID = 'ann_id'
IMAGE_ID = 'image_id'
CATEGORY_ID = 'category_id'
SPLIT = 'split'  # the refer split of the sample (metrics group by it)
GT_BBOX = 'gt_bbox'  # the untransformed GT box, xyxy, original image
# TRIS: the calibration negatives (expressions of other objects).
NEG_TEXTS = 'neg_texts'
# PCNet: the K phrases of the expression, the IaD partner (an expression of
# another object of the same image), the proposals' scores and CLIP
# similarities to the expression.
PHRASES = 'phrases'
PARTNER_TEXT = 'partner_text'
PARTNER_PHRASES = 'partner_phrases'
PARTNER_SENT_ID = 'partner_sent_id'
PARTNER_REF_ID = 'partner_ref_id'
PROPOSAL_SCORES = 'proposal_scores'
PROPOSAL_CLIP_SIM = 'proposal_clip_sim'
# Packed with PackRISInputs(tokenize=...): the CLIP BPE ids of every text
# of the sample, {text: ids}, computed in the data workers.
BPE_WORD_IDS = 'bpe_word_ids'
# Packed data field: the mask proposals, PixelData [M, H, W] (uint8 0/1).
GT_PROPOSALS = 'gt_proposals'

# Pipeline-only keys (the results dict between dataset and PackRISInputs).
SENTENCES = 'sentences'  # training: the ref's (sent_id, text) pairs
PHRASES_BY_SENT = 'phrases_by_sent'  # training: sent_id -> phrases
OTHER_REFS = 'other_refs'  # training: the other refs of the same image
SENTENCE_PHRASES = 'sentence_phrases'  # all phrases (LoadPhrases cuts K)
PARTNER_SENTENCE_PHRASES = 'partner_sentence_phrases'
PROPOSAL_DIR = 'proposal_dir'  # where LoadProposals reads
PSEUDO_LABEL_PATH = 'pseudo_label_path'  # TRIS step 2's training mask
SEGMENTATION = 'segmentation'  # the COCO polygons / RLE of the object
GT_SEG_MAP = 'gt_seg_map'

# What PackRISInputs keeps as metainfo.
META_KEYS = ('img_path', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', TEXT, NEG_TEXTS,
             SENT_ID, REF_ID, ANN_ID, IMAGE_ID, CATEGORY_ID, SPLIT, GT_BBOX,
             PHRASES, PARTNER_TEXT, PARTNER_PHRASES, PARTNER_SENT_ID,
             PARTNER_REF_ID, PROPOSAL_SCORES, PROPOSAL_CLIP_SIM)
# The text a horizontal flip must rewrite ("left" <-> "right").
TEXT_KEYS = (TEXT, PARTNER_TEXT)
TEXT_LIST_KEYS = (NEG_TEXTS, PHRASES, PARTNER_PHRASES, SENTENCE_PHRASES,
                  PARTNER_SENTENCE_PHRASES)
