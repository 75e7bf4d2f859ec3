"""The prose of "The seed note, checked" (:mod:`derive.document.seed_sections`), per
language and per claim id: a heading, what the note says (``said``), ``words`` when the note
says it in words (the quotation is then introduced as its formula), an optional remark on
the quotation (``note``) and why it holds or not (``why``). Each ``{name}`` is a formula
printed from the derived results (:func:`derive.document.seed_sections.seed_slots`)."""
from __future__ import annotations

SEED_TEXT = {"en": {
    "h": "The seed note, checked",
    "intro": "Each statement of the seed note is quoted as the note writes it and then "
             "decided by the derivations; where it does not hold, the corrected form is "
             "printed from the same derived expressions as the main text.",
    "holds": "correct", "not": "needs a correction", "sep": ": ", "comma": ", ", "stop": ".",
    "corrected": "Corrected (derived):", "see": "Derived in full in ",
    "eqref": "the main text",
    "labels": {"bptt_sum": "the BPTT double sum", "bptt_matrix": "its matrix form",
               "rec_Delta_h": "the BPTT recursion", "immediate": "the immediate partial",
               "J_h_h": "the step Jacobian", "gamma_sigmoid": "the sigmoid's bound",
               "pascanu": "Pascanu's bound", "ibar": "the peephole LSTM's forward step",
               "J_c_c": "the cell Jacobian", "J_h_c": "the output's dependence on the cell"},
    "seed.eq1": {
        "h": "Eq. (1), the Elman step",
        "said": "The note defines the recurrent step of the Elman network:",
        "why": "This is the Elman RNN of the main text exactly: parsed as written, the "
               "note's formula equals the derived step with the pre-activation {a} "
               "substituted."},
    "seed.activation": {
        "h": "The hidden activation",
        "said": "The note takes the activation of eq. (1) to be the logistic sigmoid {sigma}, "
                "the same function whose derivative it writes as {spdef} later on.",
        "note": "In words, the note says the activation is generally the sigmoid.",
        "why": "Elman networks in practice (PyTorch's default, Karpathy's character-level "
               "network) use tanh, and the choice matters: the bound on the derivative is "
               "{gsig} for the sigmoid but {gtanh} for tanh, which moves the vanishing "
               "condition from {thr} to {thrtanh}. The activation should be named and "
               "stated; the step Jacobian for each choice:"},
    "seed.eq2": {
        "h": "Eq. (2), the readout",
        "said": "The note writes the readout as {yseed}.",
        "why": "The state is missing: as written the formula adds an {HxH} matrix to a vector "
               "and does not depend on {h} at all. The readout multiplies the state:"},
    "seed.bptt": {
        "h": "The BPTT formula",
        "said": "The note gives the gradient of one loss term {Lt} with respect to the "
                "recurrent matrix, which it calls {Wh}, as a double sum over steps of "
                "products of Jacobians.",
        "why": "As written this is not the gradient of any loss with respect to {Whh}. Each "
               "summand lacks the immediate partial {dplus}, so it is a {row} row rather "
               "than an {HxH} matrix; the right side sums over all steps although the left "
               "side is one loss term; the order of the product is left open; and the sums "
               "start at {kzero} although {h0} is given. The complete gradient, with the "
               "delta it uses:"},
    "seed.bptt.total_loss": {
        "h": "One loss term on the left, all of them on the right",
        "said": "The left side of the note's BPTT formula is the gradient of {Lt}, the loss "
                "of a single step, while the right side sums over every step.",
        "why": "A sum over all steps is the gradient of the total loss {L}; the left side "
               "should read {dL}."},
    "seed.bptt.immediate_partial": {
        "h": "The immediate partial derivative",
        "said": "In the note each summand of the BPTT formula ends with the product of the "
                "step Jacobians.",
        "why": "Without the immediate partial {dplus} (step {k} alone, the previous state "
               "held fixed) a summand is the gradient of the loss with respect to a state, "
               "a {row} row, not a gradient with respect to {Whh}. With it, and contracted, "
               "each step contributes the outer product of its delta with the previous "
               "state:"},
    "seed.bptt.product_order": {
        "h": "The order of the Jacobian product",
        "said": "The note writes the product of the step Jacobians without fixing its order.",
        "why": "The Jacobians are matrices and do not commute. In numerator layout the "
               "product is ordered {order}, the latest step on the left, and is the "
               "identity for {keqt}. Each factor is the step Jacobian:"},
    "seed.bptt.index_range": {
        "h": "Where the sums start",
        "said": "The note's sums run over {seedrange}, and it names the recurrent matrix "
                "{Wh}.",
        "why": "The initial state {h0} is given, so step 0 does not depend on {Whh} (the "
               "term {kzero} would need a state before {h0}). The sums run over {range}, "
               "and the matrix should have one name, {Whh}, throughout."},
    "seed.rnn_jacobian": {
        "h": "The step Jacobian",
        "said": "The note writes the Jacobian of one step as the derivative {sp} times {Whh}.",
        "why": "The activation acts componentwise, so its derivative enters as the diagonal "
               "matrix {diagsp}, evaluated at the current pre-activation {a} and standing on "
               "the left of {Whh}. In terms of the state the diagonal is {h1mh}, not the "
               "sigmoid applied to the state:"},
    "seed.sigmoid_derivative": {
        "h": "The sigmoid's derivative",
        "said": "The note writes {spdef}.",
        "why": "This is the derivative of the logistic sigmoid; the main text proves the "
               "bound {gsig} from it."},
    "seed.sigmoid_range": {
        "h": "The range of the sigmoid's derivative",
        "said": "The note says that {sp} takes values between 0 and {quarter}, both "
                "included.",
        "words": "The note says this in words; written as a formula:",
        "why": "The maximum {quarter} is attained at 0, but the derivative is positive for "
               "every real argument, so 0 is only a limit (or a floating-point underflow). "
               "The interval is open at 0:"},
    "seed.vanishing": {
        "h": "Why gradients vanish",
        "said": "The note argues that because {sp} is at most {quarter}, multiplying such "
                "factors over many steps makes the gradient smaller and smaller.",
        "words": "The note says this in words; written as a formula:",
        "why": "The bound on the derivative alone does not imply vanishing, since {Whh} "
               "multiplies every factor. Measured by its spectral norm {norm}, the gradient "
               "is guaranteed to vanish when {thr}; this condition is sufficient, and above "
               "it gradients can explode (the counterexample of the main text does not "
               "vanish at the threshold). Pascanu's bound and the condition:"},
    "seed.lstm_equations": {
        "h": "The LSTM equations",
        "said": "The note gives the peephole LSTM step of Graves (2013), eqs. (7) to (11).",
        "note": "In the note the formula of the input gate ends with an unmatched right "
                "delimiter and does not compile; the closing parenthesis is restored here. "
                "Its cell update in the LSTM section contains the typo {typo}, checked "
                "below.",
        "why": "The equations are Graves' and those of the peephole LSTM of the main text, "
               "but two conventions must be stated: the peephole weights {peep} are "
               "diagonal (full matrices give a different model, treated in the appendix), "
               "and the products of a gate with a vector are elementwise."},
    "seed.lstm_output_gate": {
        "h": "The output gate's peephole",
        "said": "In the note the input and forget gates read the previous cell {cprev} and "
                "the output gate reads the updated cell {c}.",
        "why": "This is Graves (2013), eq. (10): the output gate's peephole reads the new "
               "cell state."},
    "seed.lstm_cell_jacobian": {
        "h": "The cell Jacobian",
        "said": "The note writes the derivative of {c} with respect to {cprev} as the forget "
                "gate {f}.",
        "why": "Only the direct path, with the gates held fixed and no peepholes, gives "
               "{diagf}. In the note's peephole LSTM the gates read {cprev}, which adds two "
               "terms, and across steps the previous cell also acts through {hprevl}, so "
               "the state Jacobian is a 2×2 block matrix. The one-step partial:"},
    "seed.gate_range": {
        "h": "The range of a gate",
        "said": "The note says that the forget gate {f}, a sigmoid, lies between 0 and 1.",
        "words": "The note says this in words; written as a formula:",
        "why": "The sigmoid maps the real numbers onto the open interval {unit}, so every "
               "gate lies strictly between 0 and 1."},
    "seed.typo": {
        "h": "A typo in the cell update",
        "said": "The note's cell update reads the previous output as {typo}.",
        "why": "This is a typo for {hprevl}; no quantity {typo} exists in the cell. The "
               "update, with the candidate written out:"},
}}

SEED_TEXT["zh"] = {
    "h": "原笔记逐条检验",
    "intro": "下面逐条照原文引用原笔记的说法，再由推导判定它是否成立；不成立的地方给出修正后的"
             "形式，它与正文打印自同一批推导结果。",
    "holds": "正确", "not": "需要修正", "sep": "：", "comma": "、", "stop": "。",
    "corrected": "修正后（由推导得出）：", "see": "完整的推导见",
    "eqref": "正文",
    "labels": {"bptt_sum": "BPTT 的双重求和", "bptt_matrix": "它的矩阵形式",
               "rec_Delta_h": "BPTT 的递推", "immediate": "直接偏导",
               "J_h_h": "一步雅可比矩阵", "gamma_sigmoid": "sigmoid 导数的上界",
               "pascanu": "Pascanu 的上界", "ibar": "带窥视孔 LSTM 的前向一步",
               "J_c_c": "细胞状态的雅可比矩阵", "J_h_c": "输出对细胞状态的依赖"},
    "seed.eq1": {
        "h": "式 (1) 中 Elman 网络的一步",
        "said": "原笔记给出 Elman 网络的循环一步：",
        "why": "这正是正文中的 Elman RNN：按原文的写法解析，代入预激活 {a} 之后，笔记的公式与"
               "推导出的一步完全相同。"},
    "seed.activation": {
        "h": "隐藏层的激活函数",
        "said": "原笔记把式 (1) 的激活函数取为 logistic sigmoid {sigma}，后文把导数写成 {spdef} "
                "的也是这个函数。",
        "note": "原笔记用文字说明：激活函数一般取 sigmoid。",
        "why": "实际使用的 Elman 网络（PyTorch 的默认设置、Karpathy 的字符级网络）用的是 tanh，"
               "而这个选择是有影响的：sigmoid 导数的上界是 {gsig}，tanh 的则是 {gtanh}，梯度消失"
               "的条件因此从 {thr} 变为 {thrtanh}。激活函数应当明确写出；两种选择下的一步雅可比"
               "矩阵如下："},
    "seed.eq2": {
        "h": "式 (2) 的输出层",
        "said": "原笔记把输出层写成 {yseed}。",
        "why": "式中缺了隐藏状态：照原文的写法，这个公式把一个 {HxH} 矩阵加到一个向量上，而且"
               "完全不依赖于 {h}。输出层应当用权重矩阵去乘隐藏状态："},
    "seed.bptt": {
        "h": "BPTT（随时间反向传播）公式",
        "said": "原笔记给出一个损失项 {Lt} 对循环权重矩阵（笔记记作 {Wh}）的梯度，写成对时间步"
                "的双重求和，每一项是雅可比矩阵的连乘。",
        "why": "照原文的写法，这不是任何损失对 {Whh} 的梯度。每个求和项都缺少直接偏导 {dplus}，"
               "因而是一个 {row} 的行向量，而不是 {HxH} 矩阵；右边对所有时间步求和，左边却只是"
               "一个损失项；连乘的顺序没有确定；求和从 {kzero} 开始，而 {h0} 是给定的。完整的"
               "梯度，以及其中用到的预激活梯度："},
    "seed.bptt.total_loss": {
        "h": "左边是一个损失项，右边是全部损失项",
        "said": "原笔记 BPTT 公式的左边是 {Lt}（单个时间步的损失）的梯度，右边却对每个时间步"
                "求和。",
        "why": "对所有时间步求和得到的是总损失 {L} 的梯度；左边应当写成 {dL}。"},
    "seed.bptt.immediate_partial": {
        "h": "直接偏导",
        "said": "原笔记 BPTT 公式的每个求和项都以一步雅可比矩阵的连乘结尾。",
        "why": "没有直接偏导 {dplus}（只看第 {k} 步本身，上一步的状态保持不变），一个求和项只是"
               "损失对某个状态的梯度，是 {row} 的行向量，而不是对 {Whh} 的梯度。补上它并作缩并"
               "之后，每一步贡献的是该步预激活的梯度与上一步状态的外积："},
    "seed.bptt.product_order": {
        "h": "雅可比矩阵连乘的顺序",
        "said": "原笔记写出了一步雅可比矩阵的连乘，但没有确定它的顺序。",
        "why": "雅可比矩阵是矩阵，彼此不可交换。在分子布局下，连乘按 {order} 的顺序排列，最晚的"
               "一步在最左边；{keqt} 时为单位矩阵。每个因子都是一步雅可比矩阵："},
    "seed.bptt.index_range": {
        "h": "求和从哪里开始",
        "said": "原笔记的求和范围是 {seedrange}，并把循环权重矩阵记作 {Wh}。",
        "why": "初始状态 {h0} 是给定的，所以第 0 步不依赖于 {Whh}（{kzero} 这一项需要 {h0} 之前"
               "的一个状态）。求和范围应为 {range}，而且这个矩阵应当通篇只用一个名字 {Whh}。"},
    "seed.rnn_jacobian": {
        "h": "一步雅可比矩阵",
        "said": "原笔记把一步的雅可比矩阵写成导数 {sp} 乘以 {Whh}。",
        "why": "激活函数逐分量作用，所以按链式法则，它的导数以对角矩阵 {diagsp} 的形式出现，在"
               "当前的预激活 {a} 处取值，并且位于 {Whh} 的左边。用状态来表示，对角线上是 "
               "{h1mh}，而不是把 sigmoid 作用在状态上："},
    "seed.sigmoid_derivative": {
        "h": "sigmoid 的导数",
        "said": "原笔记写出 {spdef}。",
        "why": "这正是 logistic sigmoid 的导数；正文由它证明了上界 {gsig}。"},
    "seed.sigmoid_range": {
        "h": "sigmoid 导数的取值范围",
        "said": "原笔记说 {sp} 的取值在 0 到 {quarter} 之间，两端都包含在内。",
        "words": "原文用文字叙述，写成公式即：",
        "why": "最大值 {quarter} 在 0 处取到，但对每个实数自变量导数都是正的，所以 0 只是一个"
               "极限（或者浮点数的下溢）。这个区间在 0 处是开的："},
    "seed.vanishing": {
        "h": "梯度消失的原因",
        "said": "原笔记的论证是：因为 {sp} 至多为 {quarter}，许多步的这种因子连乘起来，梯度就"
                "越来越小。",
        "words": "原文用文字叙述，写成公式即：",
        "why": "仅凭导数的上界推不出梯度消失，因为每个因子里都乘着 {Whh}。用谱范数 {norm} 来"
               "衡量，当 {thr} 时梯度必然消失；这只是充分条件，超过它梯度可能爆炸（正文中的反例"
               "在阈值处并不消失）。Pascanu 的上界与这个条件："},
    "seed.lstm_equations": {
        "h": "LSTM 的方程",
        "said": "原笔记给出 Graves（2013）带窥视孔 LSTM 的一步，即式 (7) 到 (11)。",
        "note": "原笔记中输入门的公式末尾有一个不配对的右定界符，无法编译；这里补上了对应的"
                "括号。笔记 LSTM 一节中的细胞状态更新含有笔误 {typo}，见下文。",
        "why": "这些方程与 Graves 的一致，也与正文中的带窥视孔 LSTM 一致，但有两个约定必须写明："
               "窥视孔权重 {peep} 是对角的（取完整矩阵得到的是另一个模型，见附录），门与向量的"
               "乘积是逐元素的。"},
    "seed.lstm_output_gate": {
        "h": "输出门的窥视孔",
        "said": "原笔记中输入门和遗忘门读的是上一步的细胞状态 {cprev}，输出门读的是更新后的"
                "细胞状态 {c}。",
        "why": "这就是 Graves（2013）的式 (10)：输出门的窥视孔读的是新的细胞状态。"},
    "seed.lstm_cell_jacobian": {
        "h": "细胞状态的雅可比矩阵",
        "said": "原笔记把 {c} 对 {cprev} 的导数写成遗忘门 {f}。",
        "why": "只有直接路径（各门固定、没有窥视孔）才给出 {diagf}。在原笔记的带窥视孔 LSTM 中，"
               "各门通过窥视孔读 {cprev}，多出两项；跨时间步时，上一步的细胞状态还经由 {hprevl} "
               "起作用，所以状态的雅可比矩阵是一个 2×2 的分块矩阵。一步的偏导为："},
    "seed.gate_range": {
        "h": "门的取值范围",
        "said": "原笔记说遗忘门 {f} 是一个 sigmoid，取值在 0 和 1 之间。",
        "words": "原文用文字叙述，写成公式即：",
        "why": "sigmoid 把实数映到开区间 {unit} 上，所以每个门都严格介于 0 和 1 之间。"},
    "seed.typo": {
        "h": "细胞状态更新中的笔误",
        "said": "原笔记的细胞状态更新把上一步的输出写成了 {typo}。",
        "why": "这是 {hprevl} 的笔误；细胞中不存在 {typo} 这个量。细胞状态的更新如下，其中写出了"
               "候选记忆："},
}
