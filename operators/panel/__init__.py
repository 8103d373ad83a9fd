"""The "Label noise" panel: events (:mod:`.panel`), what it shows
(:mod:`.layout`), review and audit sessions (:mod:`.review`) and charts
(:mod:`.charts`)."""
