"""The Chinese edition's prose (``derivations.zh.tex`` / ``.zh.md``), as data: one table per
module, keyed exactly like the English tables (:data:`TEACHING` like ``teaching.PROSE["en"]``,
:data:`LSTM_STORY` like ``lstm_story.PROSE["en"]``, :data:`APPENDIX` like
``sections.APPENDIX_PROSE["en"]``), with the same ``{slot}`` names; every formula is filled in
by the builders. The terms follow the corrected note (:mod:`derive.seed.note_zh`), one term
per concept: 梯度消失 / 梯度爆炸, 反向传播, 链式法则, 连乘, 记忆 / 细胞状态, 上下文,
遗忘门 / 输入门 / 输出门, 雅可比矩阵, 分子布局, 直接偏导, 循环权重矩阵.

Also the fixed labels of the rendering: the title, how citations and references read in
Chinese (:data:`CITE_TEXT`, :data:`REF_TEXT`), and the zh/en glossary (:func:`glossary_blocks`).
"""
from __future__ import annotations

from derive.document.model import Heading, Table, prose
from derive.seed.note_zh import GLOSSARY as NOTE_GLOSSARY

TITLE = "循环单元：方程、雅可比矩阵、随时间反向传播与上界"

TEACHING = {
    "problem.h": "长程依赖问题",
    "problem.1": "循环网络每次读入序列中的一个元素，并维护一个隐藏状态，用来携带它已经看到的"
                 "信息。许多任务需要很久以前的信息：要猜出“我在法国长大……我能说一口流利的"
                 "法语”的最后一个词，模型在许多词之后仍须记得“法国”这个上下文，{colah} "
                 "用的正是这个例子。原则上 Elman 网络能够保存这样的信息；实际上梯度下降很少能"
                 "教会它这样做，因为来自远处时间步的训练信号在反向传播的路上按几何级数缩小"
                 "（或者爆炸）（{bengio}；{hochreiter}）。",
    "problem.2": "本文沿着这条论证走一遍，每个公式都由推导得出，而不是照抄：Elman RNN 的一步"
                 "雅可比矩阵、随时间反向传播、使信号消失的上界，以及让 LSTM 和 GRU 保住信号"
                 "的两处改动。笔记《RNN和LSTM模型的数学层面》提出的问题——LSTM 是怎么解决 "
                 "RNN 的问题的——在{summary}中回答。",
    "conv.h": "约定",
    "conv.1": "每种单元只定义一次（一个 TOML 规格文件），下文的每个公式都由推导引擎从这个"
              "定义打印出来。向量都是列向量；{odot} 表示逐元素乘积，{diag} 表示以 {v} 为"
              "对角线的对角矩阵。雅可比矩阵采用分子布局：{dudv} 的第 {i} 行是分量 {ui} 的"
              "梯度。损失为 {loss}，其中 {Lt} 只通过第 {t} 步的状态依赖于这一步。",
    "conv.2": "在反向的一步中，{Delta} 是从这一步之外（本步自己的损失以及之后的所有时间步）"
              "到达状态 {s} 的梯度，{delta} 是对本步某个量 {z} 的梯度，{dprev} 是 {sprev} "
              "的梯度中经由第 {t} 步传回的那一部分，{nabla} 是 {Lt} 只对 {y} 求的梯度，是一个"
              "列向量。记号表：{nm}。",
    "elman.h": "Elman RNN",
    "elman.1": "{elman} 网络由输入和上一步的隐藏状态算出预激活 {a}，逐元素施加激活函数，"
               "再用线性变换读出输出。原笔记用 logistic sigmoid {sigma}；实际的实现通常用 "
               "tanh，这只改变下文的一个常数，不改变论证。",
    "jac.h": "逐步推导一步雅可比矩阵",
    "jac.1": "在预激活处把一步拆成两段。预激活对上一步状态的依赖是线性的，所以它的雅可比"
             "矩阵就是循环权重矩阵本身：",
    "jac.2": "激活函数对每个分量分别作用：{h} 的第 {i} 个分量只依赖于 {a} 的第 {i} 个分量。"
             "所有非对角的偏导都是零，雅可比矩阵就是导数构成的对角矩阵，在当前的预激活处"
             "取值：",
    "jac.3": "链式法则在分子布局下把两者相乘，外层函数在左边。因此对角因子位于循环权重矩阵"
             "的左边，并且在第 {t} 步取值，而不是在第 {tm1} 步：",
    "jac.4": "转置属于反向传播。反向传播把传入的梯度（一个列向量）逐个因子地乘以转置的雅可比"
             "矩阵，这正是推导出来的反向一步：",
    "jac.5": "Pascanu 等人的式 (5) 把循环权重矩阵印成了转置；其实在他们的参数化下，雅可比"
             "矩阵同样不带转置。况且矩阵与其转置的 2-范数相等，所以下面的上界不受影响。",
    "bptt.h": "随时间反向传播",
    "bptt.1": "损失是各时间步损失之和，而 {Whh} 在每一步都起作用。按照 {pascanu}（式 (3) "
              "到 (5)），梯度是一个双重求和：对每个损失项 {Lt} 和每个更早的时间步 {k}，取从 "
              "{Lt} 回到第 {k} 步的路径，再乘以直接偏导 {dplus}（只看第 {k} 步本身，上一步的"
              "状态保持不变）。雅可比矩阵的连乘按 {order} 的顺序排列，{keqt} 时为单位矩阵：",
    "bptt.2": "照这样计算，双重求和需要 {OT2} 次雅可比矩阵乘法。同样的梯度只要 {OT} 次运算"
              "就能得到：对 {kdown} 依次运行反向的一步，把到达每个状态的梯度累加起来：",
    "van.h": "梯度消失与梯度爆炸",
    "van.1": "连乘的每个因子都是激活函数导数构成的对角矩阵乘以 {Whh}。sigmoid 的导数有界，"
             "证明只要一行：用激活值来写，它与上界之差是一个平方。",
    "van.2": "对 tanh 做同样的计算得到 {gtanh}；ReLU 的导数是 0 或 1，所以 {grelu}。对角矩阵"
             "的 2-范数等于其对角元素绝对值的最大者，而 2-范数满足次乘性（{pascanu}，"
             "第 2.1 节），因此对 {kt}：",
    "van.3": "本文始终用谱范数 {norm}（最大奇异值）衡量循环权重矩阵的大小。若 {small}，每个"
             "因子至多把梯度乘以系数 {eta}：第 {k} 步对第 {t} 步梯度的贡献随 {tk} 按几何级数"
             "消失。这是充分条件；范数大只是梯度爆炸的必要条件，而不是充分条件。",
    "van.4": "单凭上界 {sp} 并不能让梯度消失，一个只有一个神经元的网络就是反例。取 {H1}、"
             "{w} 以及下面的偏置，输入为零：状态 {hstar} 是一个不动点，导数恰好在这里取到"
             "最大值，每个因子都等于 {J}。当 {wge} 时，经过 {k} 步的梯度并不消失；当 {wgt} "
             "时它会爆炸：",
}

LSTM_STORY = {
    "lstm.h": "LSTM 如何保住梯度",
    "lstm.1": "{hs} 的 LSTM 增加了第二个状态，即细胞状态（记忆）{c}，它在遗忘门、输入门和"
              "输出门三个门的控制下以加法方式更新。原笔记用的是 {graves} 带窥视孔连接的形式"
              "（式 (7) 到 (11)），其中各门也读取细胞状态：",
    "lstm.2": "沿着细胞状态单独追踪梯度，把各门当作常数。更新是逐元素的，并且是把新内容加"
              "上去，所以这条直接路径只贡献遗忘门，形式是一个对角矩阵：",
    "lstm.3": "从第 {k} 步往后跨越多步时，直接路径是对角矩阵的连乘，也就是各遗忘门逐元素乘积构成的对角"
              "矩阵。这里既没有循环权重矩阵，也没有以 {quarter} 为上界的激活函数导数：当 "
              "{fone} 时，这个连乘在许多步内都接近单位矩阵。这就是 {hs} 的常数误差传送带，"
              "再加上 {gers} 引入的遗忘门。",
    "lstm.4": "直接路径并不是一步偏导的全部。在没有窥视孔的 LSTM 中，对上一步细胞状态的偏导"
              "恰好是 {ccplain}；有了窥视孔，各门会读取上一步的细胞状态，于是在遗忘门之外又"
              "多出两项：",
    "lstm.5": "跨越时间步时，上一步的细胞状态还会通过上一步的输出 {hprev} 起作用，所以状态"
              "雅可比矩阵是关于 {state} 的 2×2 分块矩阵。它的第一行有一个公因子，即输出对"
              "新细胞状态的雅可比矩阵 {D}：",
    "lstm.6": "其中各块为",
    "lstm.7": "其余每条路径都要经过一个循环权重矩阵和门的导数，与 Elman RNN 一样，在同样的"
              "条件下会消失。只有遗忘门接近 1 时，细胞状态这条路径才能传递梯度。遗忘门是"
              "一个预激活的 sigmoid，而这个预激活含有偏置 {bf}；偏置接近 0 时遗忘门约为 "
              "{fhalf}，遗忘门的连乘像 {halfk} 那样衰减。初始化时把偏置调高 1 到 3（{gers}；"
              "{jozefowicz}），偏置为 +3 时遗忘门变为 {fthree}。",
    "fig.1": "{fig}在随机网络上测量了这一点，这些网络的循环权重矩阵分别缩放到上界阈值以下、"
             "恰好等于阈值和高于阈值。用默认的遗忘门偏置时，LSTM 的梯度消失得和 tanh RNN "
             "差不多快；把偏置调高 1 能让衰减慢几个数量级，调高 3 以后，细胞状态这条路径在 "
             "40 步内都把梯度保持在 1 附近。",
    "fig.cap": "经过 k 步的状态雅可比矩阵的范数（对随机抽样取中位数以及第 10 到第 90 百分位；"
               "各面板共用同一个纵轴）。蓝、黑、橙三色分别表示循环权重矩阵缩放到上界阈值以下、"
               "恰好等于阈值和高于阈值；虚线是上界本身（Elman RNN）。在阈值以下，Elman RNN 和 "
               "GRU 的梯度都会消失。两个 LSTM 面板中的黑线用的是默认的遗忘门偏置（f ≈ 1/2）："
               "细胞状态的梯度消失得和 tanh RNN 差不多快。把偏置调高 1（紫色，f ≈ 0.73）能让"
               "衰减慢好几个数量级；调高 3（绿色，f ≈ 0.95）则在 40 步内把梯度保持在 1 附近。"
               "恰好为零的值（ReLU）画成纵轴底部的标记。",
    "gru.h": "两种约定下的 GRU",
    "gru.1": "{cho} 的 GRU 只有一个状态，它用更新门 {z} 在上一步的状态与候选状态之间插值。"
             "Cho 等人在循环乘积之前施加重置门：",
    "gru.2": "PyTorch 和 cuDNN 在乘积之后施加重置门（多一个偏置，重置门缩放的是循环项）：",
    "gru.3": "两种约定下，一步雅可比矩阵都以 {dz} 开头，这是 GRU 的直接路径：在更新门接近 1 "
             "的地方，状态被原样复制，梯度也原样传回，这正是遗忘门在 LSTM 中的作用。colah "
             "的文章把插值反过来写，让 {z} 作为候选状态的权重；变的只是 {z} 的含义。两个"
             "雅可比矩阵如下：",
    "sum.h": "总结：LSTM 是怎么解决 RNN 的问题的",
    "sum.1": "在 Elman RNN 中，每往回传一步，梯度都要乘以 {J}：激活函数的导数（sigmoid 至多"
             "为 {quarter}，tanh 至多为 1）乘以循环权重矩阵。除非 {norm} 足够大，这个连乘就按"
             "几何级数缩小，即梯度消失；如果它很大，连乘可能爆炸。单给导数定界什么也证明不"
             "了，上界针对的是乘积。",
    "sum.2": "LSTM 增加了一条绕开这两个因子的路径：沿着细胞状态，一步的因子是 {df}，既没有"
             "循环权重矩阵，也没有压缩型激活函数的导数，所以只要遗忘门保持接近 1，梯度就能"
             "保留下来，早期的记忆就能影响很久以后的输出。各门是学出来的，由网络决定记住"
             "什么；遗忘门偏置决定训练从哪里开始。窥视孔和经过输出的那条路径会增加一些项，"
             "所以细胞状态的雅可比矩阵不只是遗忘门，但真正保住梯度的是细胞状态的加法路径。"
             "GRU 用它的更新门做了同样的事。",
    "ref.h": "参考文献",
}

APPENDIX = {
    "app.h": "其他单元",
    "app.1": "Greff 等人比较了带窥视孔 LSTM 的八种变体，每种去掉或改变一个部分；下表把它们"
             "和本文的其他单元列在一起，并给出隐藏层大小为 {H}、输入大小为 {D} 时各自的参数"
             "个数（从规格文件数出）。",
    "app.1b": "近年的几个循环单元也由同一套规则推导：Feng 等人（2024）的 minGRU 和 minLSTM，"
              "它们的门不依赖状态；xLSTM 中带指数门的 sLSTM（Beck 等人，2024）；LRU"
              "（Orvieto 等人，2023），一个对角线性递推，复数状态写成实部和虚部两个实数状态；"
              "Ba 等人（2016）的层归一化 LSTM，它的一步雅可比矩阵不再是对角的；以及两个状态为"
              "矩阵的单元（矩阵按行展开成向量保存）：xLSTM 的 mLSTM 和 Gated DeltaNet"
              "（Yang 等人，2024）：",
    "app.2": "所有参数梯度的形式都相同，这里只写一次：在预激活 {z} 中与向量 {u} 相乘的矩阵，"
             "其梯度是该预激活的梯度与这个向量的外积对所有时间步求和；偏置的梯度是各步该"
             "预激活的梯度之和。以 Elman RNN 为例：",
    "app.3": "下面各节对每个单元给出前向一步、一步雅可比矩阵和反向一步，以及到达每个状态的"
             "梯度；参数梯度按上面的规则由各预激活的梯度得出。",
    "tab.cell": "单元", "tab.what": "说明", "tab.params": "参数个数",
    "tab.states": "状态",
}

#: The reference line of each built-in cell in Chinese (its spec's ``reference``, translated;
#: paper titles, code names and equation numbers as in the source). Shown after 出处：.
_GREFF = ("Greff、Srivastava、Koutník、Steunebrink 和 Schmidhuber（2017），"
          "“LSTM: A Search Space Odyssey”，IEEE TNNLS 28(10)，arXiv:1503.04069")
_GRAVES_BASE = "基准模型为 Graves（2013）的带窥视孔 LSTM，式 (7)–(11)"
CELL_REFERENCE = {
    "rnn_sigmoid": "Elman（1990）；Pascanu、Mikolov 和 Bengio（2013），式 (1)–(5)",
    "rnn_tanh": "Elman（1990）；PyTorch 的 torch.nn.RNN（nonlinearity='tanh'）",
    "rnn_relu": "Elman（1990）；PyTorch 的 torch.nn.RNN（nonlinearity='relu'）；Le、Jaitly 和 "
                "Hinton（2015）",
    "lstm": "Hochreiter 和 Schmidhuber（1997），加上 Gers 等人（2000）的遗忘门；PyTorch 的 "
            "torch.nn.LSTM",
    "lstm_peephole": "Graves（2013），arXiv:1308.0850，式 (7)–(11)；窥视孔连接来自 Gers 和 "
                     "Schmidhuber（2000）",
    "lstm_peephole_full": "把原笔记 LSTM 中细胞到门的三个窥视孔权重当作完整矩阵（colah 文中"
                          "拼接式窥视孔的变体）；对照 Graves（2013），那里它们是对角矩阵",
    "gru": "Cho 等人（2014），arXiv:1406.1078v1 的顺序；PyTorch 的 torch.nn.GRU；cuDNN",
    "gru_cho": "Cho 等人（2014），arXiv:1406.1078v3，第 2.3 节，式 (5)–(8)，另加偏置；Keras 的 "
               "GRU(reset_after=False)",
    "lstm_cifg": _GREFF + "：变体 CIFG（输入门与遗忘门耦合，f = 1 − i）；" + _GRAVES_BASE,
    "lstm_fgr": _GREFF + "：变体 FGR（门的完全循环连接）；" + _GRAVES_BASE,
    "lstm_nfg": _GREFF + "：变体 NFG（无遗忘门，f = 1）；" + _GRAVES_BASE,
    "lstm_niaf": _GREFF + "：变体 NIAF（输入无激活函数，g(x) = x）；" + _GRAVES_BASE,
    "lstm_nig": _GREFF + "：变体 NIG（无输入门，i = 1）；" + _GRAVES_BASE,
    "lstm_noaf": _GREFF + "：变体 NOAF（输出无激活函数，h(x) = x）；" + _GRAVES_BASE,
    "lstm_nog": _GREFF + "：变体 NOG（无输出门，o = 1）；" + _GRAVES_BASE,
    "lstm_np": _GREFF + "：变体 NP（无窥视孔）；" + _GRAVES_BASE,
    "lstm_np_noaf": _GREFF + "：变体 NP（无窥视孔）与 NOAF（输出无激活函数）同时使用；从零写起的 "
                    "NumPy LSTM 中常见，它们把输出写成输出门与细胞状态的逐元素乘积",
    "mingru": "Feng、Tung、Ahmed、Bengio、Hajimirsadeghi（2024），“Were RNNs All We Needed?”，"
              "arXiv:2410.01201，第 3.1 节（minGRU，顺序模式）",
    "minlstm": "Feng、Tung、Ahmed、Bengio、Hajimirsadeghi（2024），“Were RNNs All We Needed?”，"
               "arXiv:2410.01201，第 3.2 节（minLSTM，顺序模式）",
    "slstm": "Beck、Pöppel、Spanring、Auer、Prudnikova、Kopp、Klambauer、Brandstetter、"
             "Hochreiter（2024），“xLSTM: Extended Long Short-Term Memory”，arXiv:2405.04517，"
             "第 2.2 节，式 (8)–(17)，指数遗忘门",
    "lru": "Orvieto、Smith、Gu、Fernando、Gulcehre、Pascanu、De（2023），“Resurrecting "
           "Recurrent Neural Networks for Long Sequences”，ICML，arXiv:2303.06349，第 3 节与"
           "附录 A",
    "lnlstm": "Ba、Kiros、Hinton（2016），“Layer Normalization”，arXiv:1607.06450，第 6.6 节"
              "（补充材料），式 (20)–(22)",
    "mlstm": "Beck、Pöppel、Spanring、Auer、Prudnikova、Kopp、Klambauer、Brandstetter、"
             "Hochreiter（2024），“xLSTM: Extended Long Short-Term Memory”，arXiv:2405.04517，"
             "第 2.3 节，式 (19)–(27)，单头，稳定化形式",
    "gated_deltanet": "Yang、Kautz、Hatamizadeh（2024），“Gated Delta Networks: Improving Mamba2 "
                      "with Delta Rule”，arXiv:2412.06464，第 3 节（带门控的 delta 规则），单头，"
                      "递推形式",
}

#: How the notation map (``--notation``) is described in Chinese, by map name; the
#: conventions section names the one in use (``teaching.conventions_blocks``).
NOTATION_DESC = {
    "seed": "seed（原笔记的记号，与 Graves（2013）相同，时间写在下标）",
    "greff": "greff（Greff 等人（2017）的记号：输入权重 W、循环权重 R、窥视孔权重 p、块输入 z、"
             "块输出 y，时间写在上标）",
    "pytorch": "pytorch（PyTorch 文档的参数名，按权重所乘的量命名；LSTM 的候选记忆记作 g）",
}


def reference_line(cell) -> str:
    """The cell's reference in Chinese: :data:`CELL_REFERENCE`, else its spec's text."""
    return CELL_REFERENCE.get(cell.name, cell.reference)


#: How a citation reads in Chinese, by reference key (the English text otherwise).
CITE_TEXT = {
    "colah2015": "Olah", "bengio1994": "Bengio 等人", "hochreiter1991": "Hochreiter",
    "hochreiter1997": "Hochreiter 和 Schmidhuber", "gers2000": "Gers 等人",
    "elman1990": "Elman", "pascanu2013": "Pascanu 等人", "graves2013": "Graves",
    "greff2017": "Greff 等人", "cho2014": "Cho 等人", "jozefowicz2015": "Jozefowicz 等人",
    "cs231n": "CS231n",
}

#: How a reference to a section or figure reads in the Markdown (LaTeX numbers it).
REF_TEXT = {"sec:summary": "“总结”一节", "fig:gradient_flow": "下图"}

#: LaTeX for each reference kind (Section~\ref etc. in English).
REF_TEX = {"eq": r"\eqref{%s}", "sec": r"第~\ref{%s}~节", "fig": r"图~\ref{%s}",
           "app": r"附录~\ref{%s}", "tab": r"表~\ref{%s}"}

GLOSSARY_HEADING = "术语对照（中文 / English）"
GLOSSARY_INTRO = ("本文的中文术语与修订版笔记（seed_note.corrected.md）一致，每个概念只用一个"
                  "译名：")
#: Terms of this document beyond the corrected note's glossary.
GLOSSARY_EXTRA = [
    ("长程依赖", "long-range dependency"),
    ("循环权重矩阵", "recurrent (weight) matrix"),
    ("外积", "outer product"),
    ("更新门 / 重置门；候选状态", "update gate / reset gate; candidate state"),
]


def glossary_blocks() -> list:
    """The zh/en glossary: the corrected note's terms, then this document's extra ones."""
    rows = [[zh, en] for zh, en in list(NOTE_GLOSSARY) + GLOSSARY_EXTRA]
    return [Heading(1, GLOSSARY_HEADING, "sec:glossary"), prose(GLOSSARY_INTRO),
            Table(["中文", "English"], rows, ["p{4.6cm}", "p{6.4cm}"])]
