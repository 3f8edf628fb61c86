"""The study's data: scanning a data set, decoding audio, the demo set, splits and their lists."""
