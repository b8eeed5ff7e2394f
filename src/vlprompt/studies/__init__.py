"""Studies built on the protocols: the offline demo, the paper-claims check (`replicate`),
the papers' analyses, and the HTML report of a results store."""
