"""Generated NumPy kernels (rnn-calculus): one module per cell, importing only NumPy.

    from kernels import lstm
    params = lstm.init_params(input_size, hidden_size)
    hs, cache = lstm.forward(params, xs)
"""
CELLS = ('gated_deltanet', 'gru', 'gru_cho', 'lnlstm', 'lru', 'lstm', 'lstm_cifg', 'lstm_fgr', 'lstm_nfg', 'lstm_niaf', 'lstm_nig', 'lstm_noaf', 'lstm_nog', 'lstm_np', 'lstm_np_noaf', 'lstm_peephole', 'lstm_peephole_full', 'mingru', 'minlstm', 'mlstm', 'rnn_relu', 'rnn_sigmoid', 'rnn_tanh', 'slstm')
