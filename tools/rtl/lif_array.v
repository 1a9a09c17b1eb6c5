// lif_array: an array of N LIF/IF neurons implementing golden's `codegen`
// profile (the C that qualia-codegen-plugin-snn generates), bit for bit.
//
// Verilog-2005, synthesizable, accepted by Icarus Verilog (iverilog -g2005).
//
// The datapath (golden/datapath.py states it exactly), per neuron and step,
// with every intermediate value a LONG_WIDTH-bit two's-complement integer that
// WRAPS (the C's LONG_NUMBER_T), at frac T = max(Q_IN, Q_V):
//
//   P  = v << (T - Q_V)              X  = x << (T - Q_IN)
//   VT = v_threshold << (T - Q_V)    VR = v_reset << (T - Q_V)
//   LIF, DECAY_INPUT:  H = P + R((X - (P - VR)) * rtau, T)
//   LIF, otherwise:    H = (P - R((P - VR) * rtau, T)) + X
//   IF:                H = P + X
//   spike = H >= VT
//   hard reset: v' = spike ? v_reset : SAT(R(H, T - Q_V))
//   soft reset: v' = SAT(R(spike ? H - VT : H, T - Q_V))
//   out = spike ? clamp(1 << Q_OUT) : 0
//
// R(n, s) shifts right by s: ROUND_NEAREST=1 adds half an LSB (in the wrapping
// accumulator) and then shifts arithmetically (ties toward +inf, golden's
// "RND"); ROUND_NEAREST=0 just shifts (floor, "TRN"). Note the leak product is
// shifted by T (the C's TMP_SCALE_FACTOR), not by Q_V. SAT saturates to a
// WIDTH-bit NUMBER_T; clamp(1 << Q_OUT) is taken after 1 << Q_OUT wraps to
// LONG_WIDTH bits, as the C's scale() does. The potential starts at 0 after rst.
//
// BROKEN_ROUNDING=1 is a deliberately wrong variant for the test suite: R
// rounds ties to even instead of up (only when ROUND_NEAREST=1). It must make
// the bundle testbench and the cocotb test fail.
//
// Interface: one time step per cycle with in_valid high; all N neurons are
// updated in parallel. The results (out, spike, v) are registered and valid
// in the cycle after (out_valid). v is the state (potential after the step).
// Vectors are flat, neuron i in bits [i*WIDTH +: WIDTH].
// Hyperparameters are input ports, raw integers in the potential format
// (Q_V); hold them stable during a run.

`timescale 1ns / 1ps
`default_nettype none

module lif_array #(
    parameter integer N = 4,
    parameter integer WIDTH = 8,           // NUMBER_T bits: input, potential, output
    parameter integer LONG_WIDTH = 16,     // LONG_NUMBER_T bits (wrapping accumulator), > WIDTH
    parameter integer Q_IN = 6,
    parameter integer Q_V = 6,
    parameter integer Q_OUT = 6,
    parameter integer SOFT_RESET = 0,      // 1: v <- v - v_threshold; 0: v <- v_reset
    parameter integer DECAY_INPUT = 1,     // LIF: the input is divided by tau too
    parameter integer IS_LIF = 1,          // 0: IF (no leak)
    parameter integer ROUND_NEAREST = 1,   // 1: round half up; 0: floor
    parameter integer BROKEN_ROUNDING = 0  // test only: ties to even (wrong)
) (
    input  wire                      clk,
    input  wire                      rst,             // synchronous: v <- 0
    input  wire signed [WIDTH-1:0]   v_threshold,     // raw, Q_V, >= 0 (0: fires whenever v >= 0)
    input  wire signed [WIDTH-1:0]   v_reset,         // raw, Q_V (hard reset only)
    input  wire signed [WIDTH-1:0]   reciprocal_tau,  // raw, Q_V (LIF only)
    input  wire                      in_valid,
    input  wire [N*WIDTH-1:0]        x,               // raw inputs, Q_IN
    output reg                       out_valid,
    output reg  [N*WIDTH-1:0]        out,             // raw outputs, Q_OUT
    output reg  [N-1:0]              spike,
    output wire [N*WIDTH-1:0]        v                // raw potentials, Q_V
);
    reg  [N*WIDTH-1:0] v_state;
    wire [N*WIDTH-1:0] v_next;
    wire [N-1:0]       spike_next;
    wire [N*WIDTH-1:0] out_next;

    assign v = v_state;

    genvar i;
    generate
        for (i = 0; i < N; i = i + 1) begin : neuron
            lif_step #(
                .WIDTH(WIDTH), .LONG_WIDTH(LONG_WIDTH), .Q_IN(Q_IN), .Q_V(Q_V), .Q_OUT(Q_OUT),
                .SOFT_RESET(SOFT_RESET), .DECAY_INPUT(DECAY_INPUT), .IS_LIF(IS_LIF),
                .ROUND_NEAREST(ROUND_NEAREST), .BROKEN_ROUNDING(BROKEN_ROUNDING)
            ) u_step (
                .v_in(v_state[i*WIDTH +: WIDTH]),
                .x_in(x[i*WIDTH +: WIDTH]),
                .v_threshold(v_threshold),
                .v_reset(v_reset),
                .reciprocal_tau(reciprocal_tau),
                .v_out(v_next[i*WIDTH +: WIDTH]),
                .spike(spike_next[i]),
                .out(out_next[i*WIDTH +: WIDTH])
            );
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            v_state   <= {N*WIDTH{1'b0}};
            out       <= {N*WIDTH{1'b0}};
            spike     <= {N{1'b0}};
            out_valid <= 1'b0;
        end else begin
            out_valid <= in_valid;
            if (in_valid) begin
                v_state <= v_next;
                out     <= out_next;
                spike   <= spike_next;
            end
        end
    end
endmodule


// One neuron, one time step: purely combinational.
module lif_step #(
    parameter integer WIDTH = 8,
    parameter integer LONG_WIDTH = 16,
    parameter integer Q_IN = 6,
    parameter integer Q_V = 6,
    parameter integer Q_OUT = 6,
    parameter integer SOFT_RESET = 0,
    parameter integer DECAY_INPUT = 1,
    parameter integer IS_LIF = 1,
    parameter integer ROUND_NEAREST = 1,
    parameter integer BROKEN_ROUNDING = 0
) (
    input  wire signed [WIDTH-1:0] v_in,
    input  wire signed [WIDTH-1:0] x_in,
    input  wire signed [WIDTH-1:0] v_threshold,
    input  wire signed [WIDTH-1:0] v_reset,
    input  wire signed [WIDTH-1:0] reciprocal_tau,
    output wire signed [WIDTH-1:0] v_out,
    output wire                    spike,
    output wire signed [WIDTH-1:0] out
);
    localparam integer LW = LONG_WIDTH;
    localparam integer T = (Q_IN > Q_V) ? Q_IN : Q_V;   // TMP_SCALE_FACTOR
    localparam integer SH_IN = T - Q_IN;
    localparam integer SH_V = T - Q_V;
    localparam integer EXT = LW - WIDTH;

    localparam signed [LW-1:0] ONE  = 1;
    localparam signed [LW-1:0] VMAX = {{(EXT + 1){1'b0}}, {(WIDTH - 1){1'b1}}};
    localparam signed [LW-1:0] VMIN = {{(EXT + 1){1'b1}}, {(WIDTH - 1){1'b0}}};
    // The spike value, clamp_to(NUMBER_T, scale(1, -Q_OUT)): scale() works in
    // LONG_NUMBER_T, so 1 << Q_OUT (or, for Q_OUT < 0, the rounding right
    // shift of 1) wraps to LONG_WIDTH bits before the saturating clamp.
    localparam integer S_OUT = -Q_OUT;
    localparam signed [LW-1:0] ONE_OUT =
        (Q_OUT >= 0)           ? (ONE <<< Q_OUT) :
        (ROUND_NEAREST != 0)   ? ((ONE + (ONE <<< (S_OUT - 1))) >>> S_OUT) :
                                 (ONE >>> S_OUT);
    localparam signed [WIDTH-1:0] SPIKE_OUT =
        (ONE_OUT > VMAX) ? VMAX[WIDTH-1:0] :
        (ONE_OUT < VMIN) ? VMIN[WIDTH-1:0] : ONE_OUT[WIDTH-1:0];

    // Sign-extend a NUMBER_T to LONG_NUMBER_T.
    function signed [LW-1:0] sx;
        input signed [WIDTH-1:0] a;
        sx = {{EXT{a[WIDTH-1]}}, a};
    endfunction

    // R(n, s): n * 2**-s rounded, in the wrapping accumulator.
    function signed [LW-1:0] rshift;
        input signed [LW-1:0] n;
        input integer s;
        reg signed [LW-1:0] fl, up, mask, half;
        begin
            if (s <= 0) begin
                rshift = n <<< (-s);
            end else if (ROUND_NEAREST == 0) begin
                rshift = n >>> s;
            end else begin
                half = ONE <<< (s - 1);
                fl = n >>> s;
                up = (n + half) >>> s;            // add half, then arithmetic shift
                if (BROKEN_ROUNDING != 0) begin    // ties to even: wrong on purpose
                    mask = (ONE <<< s) - ONE;
                    rshift = ((n & mask) == half && fl[0] == 1'b0) ? fl : up;
                end else begin
                    rshift = up;
                end
            end
        end
    endfunction

    // Saturate a LONG_NUMBER_T to NUMBER_T.
    function signed [WIDTH-1:0] sat;
        input signed [LW-1:0] n;
        begin
            if (n > VMAX)
                sat = VMAX[WIDTH-1:0];
            else if (n < VMIN)
                sat = VMIN[WIDTH-1:0];
            else
                sat = n[WIDTH-1:0];
        end
    endfunction

    wire signed [LW-1:0] P    = sx(v_in) <<< SH_V;
    wire signed [LW-1:0] X    = sx(x_in) <<< SH_IN;
    wire signed [LW-1:0] VT   = sx(v_threshold) <<< SH_V;
    wire signed [LW-1:0] VR   = sx(v_reset) <<< SH_V;
    wire signed [LW-1:0] RTAU = sx(reciprocal_tau);

    wire signed [LW-1:0] d    = (DECAY_INPUT != 0) ? X - (P - VR) : P - VR;
    wire signed [LW-1:0] prod = d * RTAU;                 // low LW bits: wraps
    wire signed [LW-1:0] leak = rshift(prod, T);
    wire signed [LW-1:0] H    = (IS_LIF == 0)      ? P + X :
                                (DECAY_INPUT != 0) ? P + leak :
                                                     (P - leak) + X;

    assign spike = (H >= VT);
    wire signed [LW-1:0] H2 = (spike && SOFT_RESET != 0) ? H - VT : H;
    wire signed [WIDTH-1:0] v_charged = sat(rshift(H2, SH_V));
    assign v_out = (spike && SOFT_RESET == 0) ? v_reset : v_charged;
    assign out = spike ? SPIKE_OUT : {WIDTH{1'b0}};
endmodule

`default_nettype wire
