"""Class-agnostic mask proposals (SAM or colour regions) for PCNet."""
from .clip_similarity import ProposalCLIPSimilarity, proposal_crops
from .generators import ColourRegionProposalGenerator, SAMProposalGenerator
from .runner import ProposalRunner, ProposalSettingsError, images_from_refs
from .storage import (decode_masks, encode_masks, load_image_proposals,
                      load_index, proposal_path, read_proposal_file)

__all__ = [
    'SAMProposalGenerator', 'ColourRegionProposalGenerator',
    'ProposalCLIPSimilarity', 'proposal_crops', 'ProposalRunner',
    'ProposalSettingsError', 'images_from_refs', 'decode_masks',
    'encode_masks', 'load_image_proposals', 'load_index', 'proposal_path',
    'read_proposal_file'
]
