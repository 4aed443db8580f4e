# Tokenizers: SentencePiece parity with spm_encode / spm_decode (or Python sentencepiece) on
# $TERN_DATA, the FineWeb shard, tern BPE, byte and MaxMatch tokenizers, bad input.
tern_unit_test(test_tokenizer tern_data)
