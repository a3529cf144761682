"""prefalign: self-supervised visual preference alignment, four papers side by side."""
