"""Transaction simulator: the Fraud Detection Handbook generator (:mod:`.handbook`), opt-in
extra scenarios and fields (:mod:`.extra`) and the ``generate`` command (:mod:`.command`)."""
