"""Models: specialists, the EosFM ensemble encoder, band adaptation, gates and heads."""
