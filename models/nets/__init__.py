"""F-RAVE / C-RAVE networks: PQMF, causal streaming layers, encoder, decoder, critics."""
