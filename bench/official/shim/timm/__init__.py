"""Stand-in for the timm helpers that the official TinyViT encoder imports (timm is not
installable here). Inference only: DropPath is the identity outside training."""
