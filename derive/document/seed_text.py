"""The prose of "The seed note, checked" (:mod:`derive.document.seed_sections`), per
language and per claim id: a heading, what the note says (``said``), an optional remark on
the quotation (``note``) and why it holds or not (``why``). Each ``{name}`` is a formula
printed from the derived results (:func:`derive.document.seed_sections.seed_slots`)."""
from __future__ import annotations

SEED_TEXT = {"en": {
    "h": "The seed note, checked",
    "intro": "Each statement of the seed note is quoted as the note writes it and then "
             "decided by the derivations; where it does not hold, the corrected form is "
             "printed from the same derived expressions as the main text.",
    "holds": "correct", "not": "needs a correction",
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
               "the left of {Whh}. In terms of the state, the diagonal holds the components "
               "of {h} times one minus them, not the sigmoid applied to the state:"},
    "seed.sigmoid_derivative": {
        "h": "The sigmoid's derivative",
        "said": "The note writes {spdef}.",
        "why": "This is the derivative of the logistic sigmoid; the main text proves the "
               "bound {gsig} from it."},
    "seed.sigmoid_range": {
        "h": "The range of the sigmoid's derivative",
        "said": "The note says that {sp} takes values between 0 and {quarter}, both "
                "included.",
        "note": "The note says this in words.",
        "why": "The maximum {quarter} is attained at 0, but the derivative is positive for "
               "every real argument, so 0 is only a limit (or a floating-point underflow). "
               "The interval is open at 0:"},
    "seed.vanishing": {
        "h": "Why gradients vanish",
        "said": "The note argues that because {sp} is at most {quarter}, multiplying such "
                "factors over many steps makes the gradient smaller and smaller.",
        "note": "The note says this in words.",
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
               "the state Jacobian is a 2 by 2 block matrix. The one-step partial:"},
    "seed.gate_range": {
        "h": "The range of a gate",
        "said": "The note says that the forget gate {f}, a sigmoid, lies between 0 and 1.",
        "note": "The note says this in words.",
        "why": "The sigmoid maps the real numbers onto the open interval {unit}, so every "
               "gate lies strictly between 0 and 1."},
    "seed.typo": {
        "h": "A typo in the cell update",
        "said": "The note's cell update reads the previous output as {typo}.",
        "why": "This is a typo for {hprevl}; no quantity {typo} exists in the cell. The "
               "update, with the candidate written out:"},
}}
