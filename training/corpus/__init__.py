"""Building the training corpus and its training patches (`python -m training.corpus`, then
`training.decontaminate`, then `training.prepare`).

    sources.py        training/sources.csv, and bringing one source here (debian.py, github.py, speech.py)
    files.py          the audio files of a source folder, and those inside game archives
    clips.py          audio files -> 10-s FLAC clips with raw tags; held-out sets (labels.csv)
    soundfonts.py     General MIDI soundfonts rendered note by note
    sourcetags.py     what each source says about a file: one tagger per source
    tags.py           raw words -> tags (tokens, stop words, singulars) and the tag vocabulary
    domains.py        the domain of a tag set (speech, notes, real-world kinds)
    manifest.py       share caps per source, manifest.jsonl, vocab.json, the build's table
    build.py          the build itself: every source of sources.csv, then the manifest
    decontaminate.py  audio fingerprints: corpus clips found in the evaluation sets are excluded
    prepare.py        corpus -> scaled training patches (the format of training/trainer/data.py)

Nothing here is imported by training.trainer: the trainer reads what prepare.py writes.
"""
