"""The Chinese prose of the corrected seed note (``out/seed_note.corrected.md``), as data.

The prose is new text written for the note's author; it follows the note's sections in the
note's order (:data:`SECTIONS`, headings as in the note) but does not reuse its sentences.
No formula is written here: ``{key}`` stands for an inline formula and ``("math", key)`` for
a display, both printed by the derivation engine (:mod:`derive.document.seed_note_math`);
``<<seed.id>>`` marks where the statement of seed claim ``seed.id`` (:mod:`derive.seed.claims`)
occurs, and becomes a footnote whose reason is :data:`FOOTNOTES` [seed.id]. Only bare
symbols of the running text (``$k$``, ``$T$``) are typed as math.

Block kinds: ``("p", text)`` a paragraph, ``("math", key)`` a display, ``("list", [text])``
a bullet list, ``("img", path, alt)`` one of the note's own pictures (named by :data:`IMAGE_NOTE`,
not linked), ``("table", key)`` a
table built by the engine side.
"""
from __future__ import annotations

#: The note's title (its ``###`` heading) and its ``####`` headings, in the note's order.
TITLE = "RNN和LSTM模型的数学层面"

SUBTITLE = ("修订版：写给笔记作者。章节和论证的顺序与原笔记相同，原来用在线公式图片给出的公式"
            "全部由 rnn-calculus 的推导引擎从单元定义重新推导、打印；原文的 11 处错误或"
            "不严谨之处在出现的地方用脚注标出，脚注写明原因和推导得到的正确形式。记号沿用"
            "原笔记（{W_xh}、{W_hh} 等），$\\odot$ 表示逐元素乘积。")

#: The three sources the note links (its own link texts): (label, url, what it is); then the
#: papers the corrections rest on: (label, url, title, venue, what the note takes from it).
SOURCES = [
    ("Understanding LSTM Networks", "http://colah.github.io/posts/2015-08-Understanding-LSTMs/",
     "Christopher Olah 的博客文章（2015）"),
    ("为什么相比于RNN，LSTM在梯度消失上表现更好?",
     "https://www.zhihu.com/question/44895610/answer/616818627", "知乎上的一个回答"),
    ("RNN以及LSTM的介绍和公式梳理", "https://blog.csdn.net/dark_scope/article/details/47056361",
     "CSDN 博客文章"),
]

PAPERS = [
    ("Pascanu, Mikolov, Bengio (2013)", "https://arxiv.org/abs/1211.5063",
     "On the difficulty of training recurrent neural networks", "ICML 2013",
     "BPTT 的求和形式与范数上界"),
    ("Graves (2013)", "https://arxiv.org/abs/1308.0850",
     "Generating Sequences With Recurrent Neural Networks", "arXiv:1308.0850",
     "原笔记所用带窥视孔 LSTM 的式 (7)–(11)"),
    ("Greff et al. (2017)", "https://arxiv.org/abs/1503.04069",
     "LSTM: A Search Space Odyssey", "IEEE TNNLS 28(10)",
     "LSTM 反向传播的逐项公式与各种变体的比较"),
    ("Hochreiter, Schmidhuber (1997)", "https://doi.org/10.1162/neco.1997.9.8.1735",
     "Long Short-Term Memory", "Neural Computation 9(8)", "常数误差传送带"),
    ("Gers, Schmidhuber, Cummins (2000)", "https://doi.org/10.1162/089976600300015015",
     "Learning to Forget: Continual Prediction with LSTM", "Neural Computation 12(10)",
     "遗忘门"),
    ("Jozefowicz, Zaremba, Sutskever (2015)", "https://proceedings.mlr.press/v37/jozefowicz15.html",
     "An Empirical Exploration of Recurrent Network Architectures", "ICML 2015",
     "遗忘门偏置的初始化"),
]
#: How one paper is listed: link, title, venue, what the corrections take from it.
PAPER_LINE = "* [{label}]({url})：*{title}*，{venue}。用于：{what}。"

SOURCES_INTRO = "参考文献（原笔记引用的三篇）："
PAPERS_INTRO = "勘误所依据的原始论文："

_COLAH = "http://colah.github.io/posts/2015-08-Understanding-LSTMs/"

SECTIONS = [
    ("从RNN说起", [
        ("p", "先从最基本的循环网络（Elman RNN）讲起。把网络沿时间方向展开，可以看到每个时间步"
              "共用同一组参数：当前输入与上一步的隐藏状态一起，算出这一步新的隐藏状态。"),
        ("img", "graph/RNN-unrolled.jpg", "RNN 沿时间展开"),
        ("p", "一步的前向计算由推导引擎给出如下，括号里的量称为预激活，记作 {a_t}："),
        ("math", "eq1"),
        ("math", "a_def"),
        ("p", "输出层是隐藏状态的一个仿射变换：<<seed.eq2>>"),
        ("math", "eq2"),
        ("p", "式 (1) 中 {sigma_a} 的 σ 是隐藏层的激活函数，原笔记取 logistic sigmoid。<<seed.activation>> "
              "下文照原笔记使用 sigmoid，因为后面 {sp_identity} 这一步正是建立在这个选择上；"
              "若改用 tanh，只要把 {sp_a} 换成 {tp_a}，并把阈值里的常数 4 换成 1。"),
        ("p", "网络读入长度为 $T$ 的序列 {seq}（原文把序列的第一个元素写成了 {x_t}，"
              "应从 {x_1} 开始），按时间顺序一步步算出每个 {h_t} 和 {y_t}。"),
    ]),
    ("RNN面临的问题", [
        ("p", "处理长序列时，RNN 最主要的困难是梯度消失：梯度在反向传播中越传越小，网络因此学不会"
              "相隔很远的依赖关系。colah 在 [Understanding LSTM Networks] 的“The Problem of "
              "Long-Term Dependencies”一节里用一个补全句子的例子说明了这一点（原文见"
              "[该页](" + _COLAH + ")，这里不转引）：决定答案的线索出现在很多词以前，"
              "线索与需要它的位置隔得越远，RNN 越难把两者联系起来。"),
        ("p", "用本文的话说：有用的上下文离当前时间步越远，普通 RNN 就越难利用它。"),
        ("p", "原因要回到式 (1) 的递推结构："),
        ("math", "eq1"),
        ("p", "{h_prev} 本身又由更早的隐藏状态算出，一直可以追溯到初始状态 {h_0}。所以在反向传播中"
              "对 {W_hh} 求梯度时，链式法则会把许多个一步雅可比矩阵连乘在一起。按 Pascanu 等人"
              "（2013）的写法，总损失对 {W_hh} 的梯度是："
              "<<seed.bptt>><<seed.bptt.total_loss>><<seed.bptt.immediate_partial>>"
              "<<seed.bptt.product_order>><<seed.bptt.index_range>>"),
        ("math", "bptt_sum"),
        ("p", "其中 {J_j_def} 是第 $j$ 步的一步雅可比矩阵，连乘 {J_range} 要按 $j$ 从 $t$ 递减到 $k+1$ 的顺序从左往右写，$k=t$ 时为单位矩阵；"
              "{immediate} 是“直接”偏导，即把 {h_prev_k} 看作常数、只对第 $k$ 步中显式出现的 {W_hh} "
              "求导。把这两部分合在一起，每一项都化成一个外积，整个双重求和等价于一个从 $t=T$ 往回"
              "走的递推，总计算量只有 $O(T)$："),
        ("math", "bptt_rec"),
        ("p", "这里 {grad_y} 是本步损失 $L_t$ 对输出 {y_t} 的梯度（列向量），{grad_h} 是本步损失对 "
              "{h_t} 的梯度；{Delta_h} 是到达 {h_t} 的全部梯度：本步损失的那一部分，加上第 $t+1$ 步传回来的"
              "部分（$t=T$ 时没有后者）。把递推展开，得到 {Delta_h_sum}，它恰好就是双重求和里"
              "对 $t$ 的那一层。"),
        ("p", "一步雅可比矩阵可以直接从式 (1) 求出：<<seed.rnn_jacobian>>"),
        ("math", "J_h"),
        ("p", "{h_t} 的第 $i$ 个分量只通过 {a_t} 的第 $i$ 个分量依赖于 {h_prev}，所以激活函数的导数"
              "以对角矩阵的形式从左边乘到 {W_hh} 上（分子布局：行对应 {h_t} 的分量，列对应 {h_prev} "
              "的分量）。sigmoid 的导数可以用它自己表示，并且可以用本步的输出写出来："),
        ("math", "sp_forms"),
        ("p", "由此可得 {sp_a} 的取值范围：<<seed.sigmoid_range>>"),
        ("math", "sp_range"),
        ("p", "最大值 {gamma_sigmoid} 在 {a_zero} 处取到。每往回传一步，梯度都要再乘一个对角因子，"
              "它的每个元素都不超过 {gamma_sigmoid}；这样的因子反复相乘，梯度就会越来越小，距离"
              "较远的两个输入之间几乎没有影响。不过这还需要一个条件，因为每一步同时还乘了 {W_hh}："
              "<<seed.vanishing>>用谱范数 {norm}（{W_hh} 的最大奇异值）衡量 {W_hh} 的大小，则"),
        ("math", "pascanu"),
        ("p", "因此 {vanish} 时梯度必然按指数衰减（充分条件）；反过来，只有 {explode} 时梯度才可能爆炸"
              "（必要条件）。"),
    ]),
    ("再看看LSTM", [
        ("p", "原笔记在这里用一张图示意 LSTM 一步的前向计算："),
        ("img", "graph/lstm-lhy.jpg", "LSTM 前向计算示意"),
        ("p", "原笔记用的是 Graves（2013）带窥视孔连接（peephole）的 LSTM。推导引擎给出的前向公式"
              "与原文逐行对应：<<seed.lstm_equations>>"),
        ("math", "lstm5"),
        ("p", "窥视孔权重 {w_ci}、{w_cf}、{w_co} 是向量（相当于对角矩阵），所以写作与细胞状态的逐元素"
              "乘积。为了下文求导，再给各门进入 sigmoid 之前的预激活和候选记忆各起一个名字："),
        ("math", "lstm_parts"),
        ("p", "有几处细节值得留意："),
        ("list", [
            "输入门 {i_t} 和遗忘门 {f_t} 不只看当前输入 {x_t}，还看上一步的记忆（细胞状态）"
            "{c_prev} 以及上一步的输出 {h_prev}（前两行）。",
            "要写进细胞状态的候选记忆 {g_t} 只由当前输入 {x_t} 和上一步的输出 {h_prev} 决定。",
            "输出门 {o_t} 与另外两个门的区别在于它的窥视孔读的是本步刚更新好的 {c_t}，而不是 "
            "{c_prev}，与 Graves（2013）式 (10) 一致。",
        ]),
    ]),
    ("LSTM是怎么解决RNN的问题的呢？", [
        ("p", "前面看到，RNN 的症结是梯度沿 {h_t} 反向传播时一步一步连乘，乘积越来越小，早期的记忆"
              "因而左右不了很久以后的判断。LSTM 另外开辟了一条记忆的通道。先看细胞状态如何更新："
              "<<seed.typo>>"),
        ("math", "c_update"),
        ("p", "若把三个门都当作常数，只看记忆沿自身传递的直接路径（这种偏导记作 {partial_plus}，"
              "与上文直接偏导的记号相同），则一步的偏导是一个对角矩阵："),
        ("math", "direct"),
        ("p", "但在原笔记的带窥视孔 LSTM 中，输入门和遗忘门也通过窥视孔读 {c_prev}，所以一步偏导"
              "还多出两项：<<seed.lstm_cell_jacobian>>"),
        ("math", "J_cc"),
        ("p", "不仅如此，{c_prev} 还会经由 {h_prev} 影响这一步的各个门，因此严格地说要看状态 "
              "{state_pair} 的 2×2 分块雅可比矩阵，四块分别是："),
        ("math", "blocks"),
        ("p", "遗忘门本身是 sigmoid 的输出（原文写作 {sigma_of_x}；其中的自变量是遗忘门的预激活 "
              "{fbar_t}，并非输入 {x_t}）："),
        ("math", "f_def"),
        ("p", "它严格介于 0 和 1 之间，就像一个可以连续调节开度的阀门。反向传播时，推导引擎给出的"
              "细胞状态梯度的递推如下，其中 {Delta_hc} 是从这一步之外到达 {h_t}、{c_t} 的梯度，"
              "{dprev_c} 是经由第 $t$ 步传回 {c_prev} 的梯度："),
        ("math", "c_back"),
        ("p", "传回 {c_prev} 的第一项只乘了遗忘门的值：这里既没有 {W_hh} 那样的矩阵，也没有 "
              "{sp_a} 那样不超过 {gamma_sigmoid} 的因子。这正是 LSTM 能把上下文传得更远的原因；"
              "其余两项来自窥视孔。下一节把这些放在一起说明。"),
    ]),
    ("总结", [
        ("p", "**RNN 的问题。** 反向传播时，按链式法则，第 $k$ 步对第 $t$ 步的影响要经过 $t-k$ 个"
              "一步雅可比矩阵 {J_j} 的连乘，每个因子都含有一个元素不超过 {gamma_sigmoid} 的对角矩阵和同一个 {W_hh}。"
              "{vanish} 时乘积随距离按指数衰减，即梯度消失；{explode} 时乘积也可能按指数增长，"
              "即梯度爆炸。"),
        ("p", "**LSTM 的办法。** LSTM 把记忆放进细胞状态 {c_t}，每一步用加法更新它（保留一部分旧"
              "记忆，再写入一部分新内容），而不是整体乘上一个矩阵。沿细胞状态的直接路径，相隔 "
              "$t-k$ 步的雅可比矩阵只是遗忘门值构成的对角矩阵的连乘："),
        ("math", "carousel"),
        ("p", "对角矩阵彼此可以交换，所以这里的连乘与顺序无关：每个记忆单元只乘以它自己的遗忘门"
              "值。只要遗忘门接近 1，梯度就几乎原样传回很早的时间步（Hochreiter 和 Schmidhuber "
              "称之为“常数误差传送带”）。遗忘门决定保留多少旧记忆，输入门决定写入多少新信息，"
              "输出门决定读出多少；一段上下文要不要保留，是网络通过遗忘门学出来的，而不是被 "
              "{sp_a} 与 {W_hh} 的连乘强行抹掉的。"),
        ("p", "**遗忘门偏置很关键。** 这一点并不会自动成立：遗忘门是 sigmoid 的输出，若偏置 {b_f} "
              "取默认的 0、其他输入的贡献又不大，那么遗忘门的值约为 {sigma_zero}，直接路径照样按"
              "指数衰减，和 RNN 一样会梯度消失。所以实践中常把遗忘门偏置初始化为 +1 到 +3"
              "（Gers 等人，2000；Jozefowicz 等人，2015）。下表取遗忘门的值恒为 {f_const}，"
              "列出 40 步之后直接路径上剩下的因子："),
        ("table", "bias_table"),
        ("p", "**窥视孔与经由输出的路径。** 对原笔记的带窥视孔 LSTM，{dc_dc} 并不只是 {diag_f}，还多出两个"
              "窥视孔项；经由 {h_prev} 的那条路径又把 {W_hi}、{W_hf} 等矩阵和 sigmoid 导数带了回来。"
              "这些路径上依然有连乘，所以 LSTM 是缓解而不是根除梯度消失；梯度爆炸也仍有可能，"
              "实践中通常再配合梯度裁剪（Pascanu 等人，2013）。"),
        ("p", "**一句话回答原笔记的问题。** RNN 的梯度必须穿过 {sp_a} 与 {W_hh} 的反复连乘；LSTM "
              "给梯度另留了一条只乘遗忘门的通道，只要遗忘门保持接近 1（靠合适的偏置初始化），"
              "早期的记忆就能影响很久以后的输出。"),
    ]),
]

GLOSSARY_HEADING = "术语对照（中文 / English）"
GLOSSARY = [
    ("梯度消失 / 梯度爆炸", "vanishing / exploding gradients"),
    ("反向传播；随时间反向传播", "backpropagation; backpropagation through time (BPTT)"),
    ("链式法则", "chain rule"),
    ("连乘", "repeated (ordered) product"),
    ("雅可比矩阵；分子布局", "Jacobian; numerator layout"),
    ("直接偏导", "immediate partial derivative"),
    ("隐藏状态", "hidden state"),
    ("记忆 / 细胞状态", "memory / cell state"),
    ("上下文", "context"),
    ("时间步", "time step"),
    ("激活函数；预激活", "activation function; pre-activation"),
    ("遗忘门 / 输入门 / 输出门", "forget gate / input gate / output gate"),
    ("候选记忆", "candidate (block input)"),
    ("窥视孔连接", "peephole connection"),
    ("逐元素乘积", "elementwise (Hadamard) product"),
    ("对角矩阵", "diagonal matrix"),
    ("最大奇异值（谱范数）", "largest singular value (spectral norm)"),
    ("偏置", "bias"),
    ("常数误差传送带", "constant error carousel"),
    ("梯度裁剪", "gradient clipping"),
]

#: Footnote reasons, one per seed claim marked in :data:`SECTIONS` (``{key}`` as above).
#: The engine side appends the note's own formula and the derived correction.
FOOTNOTES = {
    "seed.eq2": "原式漏掉了 {h_t}：写成 {eq2_as_written} 时是一个矩阵加一个向量，维数对不上，"
                "而且输出与隐藏状态无关。",
    "seed.activation": "原文说 σ 一般取 sigmoid，但 Elman RNN 的常见实现（PyTorch 的 nn.RNN "
                       "默认、min-char-rnn）用的是 tanh。这不只是记号问题：导数的上确界 "
                       "{gamma_def} 对 sigmoid 是 {gamma_sigmoid}，对 tanh 是 {gamma_tanh}，"
                       "Pascanu 的阈值随之从 {vanish} 变为 {vanish_tanh}。后文 LSTM 的各门也用 σ，"
                       "那里它一定是 logistic sigmoid；所以隐藏层的激活函数宜另记作 {phi}，并写明"
                       "取哪一个。两种选择下的一步雅可比矩阵分别是：",
    "seed.bptt": "原式不是任何损失对 {W_hh} 的梯度，问题有四处，分别见紧接的四条脚注（总损失、"
                 "直接偏导、乘积顺序、下标范围）。改正后，对 {W_hh} 的梯度是各步外积之和。",
    "seed.bptt.total_loss": "左边是单个时间步的损失 {L_t}，右边却对 $t$ 求和；右边其实是总损失 "
                            "{L_total} 的梯度，应写成 {total_grad}。",
    "seed.bptt.immediate_partial": "每一项末尾缺少直接偏导 {immediate}（Pascanu 等人，2013，式 (4)）。"
                                   "缺了它，每一项只是 {dLt_dhk}，一个 $1\\times H$ 的行向量，"
                                   "而不是 $H\\times H$ 的梯度；补上并缩并后，第 $t$ 步的一项是外积 "
                                   "{outer_t}，对所有时间步求和即得梯度：",
    "seed.bptt.product_order": "雅可比矩阵一般不可交换，连乘必须按 {J_range} 的顺序（分子布局）"
                               "书写，$k=t$ 时是单位矩阵；其中每个因子是：",
    "seed.bptt.index_range": "求和从 $t=0$、$k=0$ 开始，就需要一个并不存在的 {h_m1}，或者意味着"
                             "给定的初始状态 {h_0} 依赖于 {W_hh}；{h_0} 给定时应为 {k_range}。"
                             "另外 {W_h_seed} 与正文的 {W_hh} 是同一个矩阵，记号应统一。",
    "seed.rnn_jacobian": "{sp_a} 是一个 $H$ 维向量，不能直接乘在 {W_hh} 前面。正确的形式是"
                         "在本步预激活 {a_t} 处取值的对角矩阵从左边乘 {W_hh}；用输出表示时 "
                         "{sp_out}，而不是把 {h_t} 再代入一次 sigmoid。（Pascanu 等人论文的式 (5) "
                         "用了另一种参数化，并多印了一个转置，不要照搬到这里。）",
    "seed.sigmoid_range": "{sp_x} 对一切实数 $x$ 都大于 0，0 只是 $x\\to\\pm\\infty$ 时的极限"
                          "（或浮点下溢），所以区间左端是开的；最大值 {gamma_sigmoid} 在 {x_zero} "
                          "处取到。",
    "seed.vanishing": "单凭 {sp_le} 推不出梯度一定消失：每一步还要乘 {W_hh}。用谱范数 {norm}"
                      "（最大奇异值）衡量它，{vanish} 时梯度一定消失（这是充分条件，不是必要条件）；"
                      "{explode} 是梯度爆炸的必要条件。反例：单个神经元、{W_hh_counter}，用输入"
                      "让预激活保持为 0，则每一步的因子都是 {counter_factor}，梯度反而越来越大。",
    "seed.lstm_equations": "这组公式与 Graves（2013）式 (7)–(11) 完全一致，本身没有错，但少交代"
                           "了两点：(a) 窥视孔权重 {W_ci_seed}、{W_cf_seed}、{W_co_seed} 必须是"
                           "对角矩阵（本文记作向量 {w_ci} 等）；若当作满矩阵，就成了 colah 文中"
                           "的另一个模型，每个窥视孔有 $H^2$ 而不是 $H$ 个参数。(b) "
                           "{f_c_prev}、{i_g} 和 {o_tanh_c} 都是逐元素乘积。",
    "seed.lstm_cell_jacobian": "原式只有在各门与 {c_prev} 无关时才成立：要么把门当作常数"
                               "（只看直接路径），要么模型没有窥视孔；即便如此，它也是对角矩阵 "
                               "{diag_f}，而不是向量。原文的 LSTM 有窥视孔，输入门和遗忘门"
                               "都通过窥视孔依赖 {c_prev}，一步偏导见下面的更正；跨越多步时 {c_prev} "
                               "还通过 {h_prev} 起作用，要看正文的 2×2 分块雅可比矩阵。",
    "seed.typo": "{h_t_1} 是笔误，应为 {h_prev}。",
}

#: Claims whose footnote also shows the note's own formula (``quote_latex``) before the
#: correction (the BPTT sub-claims share the one quotation of ``seed.bptt``).
QUOTE_IN_FOOTNOTE = ("seed.eq2", "seed.bptt", "seed.rnn_jacobian", "seed.sigmoid_range",
                     "seed.vanishing", "seed.lstm_cell_jacobian", "seed.typo")

#: How one of the note's own pictures is shown: named, not linked (the picture lives beside
#: the author's note, not beside this file). ``{alt}``, ``{path}``.
IMAGE_NOTE = "*（此处是原笔记的插图：{alt}，即原笔记目录中的 `{path}`。）*"

QUOTE_LABEL = "原式："
#: For a claim the note states in words (``quote_note``), its formula is a transcription.
QUOTE_WORDS_LABEL = "原文用文字叙述，写成公式即："
CORRECTED_LABEL = "更正（推导得到）："
ERRATUM_LABEL = "勘误"
FOOTNOTE_HEADING = "脚注"
