// tb_bundle: replays a golden test-vector bundle through lif_array and
// compares every step and neuron against the bundle's expected outputs,
// potentials and spikes.
//
// The bundle's files are $readmemh'd (one word per line, fixed-width
// two's-complement hex, time-major, neuron-minor); their paths come as
// plusargs:
//
//   vvp tb +x=x.hex +out=out.hex +v=v.hex +spikes=spikes.hex
//
// Compile with the spec's numbers as parameters (tools/rtl/run_bundle.py does
// this from the bundle's manifest), e.g.
//
//   iverilog -g2005 -s tb_bundle -P tb_bundle.STEPS=64 -P tb_bundle.N=8 ...
//
// It prints up to MAX_REPORT mismatch lines, then exactly one line
//
//   RESULT PASS mismatches=0 checked=<n>
//   RESULT FAIL mismatches=<m> checked=<n>
//
// and stops with $finish. Runners parse that line (vvp's exit status is 0
// either way); a missing line means the run broke.

`timescale 1ns / 1ps
`default_nettype none

module tb_bundle;
    parameter integer STEPS = 1;
    parameter integer N = 1;
    parameter integer WIDTH = 8;
    parameter integer LONG_WIDTH = 16;
    parameter integer Q_IN = 6;
    parameter integer Q_V = 6;
    parameter integer Q_OUT = 6;
    parameter integer SOFT_RESET = 0;
    parameter integer DECAY_INPUT = 1;
    parameter integer IS_LIF = 1;
    parameter integer ROUND_NEAREST = 1;
    parameter integer BROKEN_ROUNDING = 0;
    parameter integer VTH = 64;
    parameter integer VRESET = 0;
    parameter integer RTAU = 32;
    parameter integer MAX_REPORT = 10;

    localparam integer WORDS = STEPS * N;

    reg  [WIDTH-1:0] x_mem   [0:WORDS-1];
    reg  [WIDTH-1:0] out_mem [0:WORDS-1];
    reg  [WIDTH-1:0] v_mem   [0:WORDS-1];
    reg              spk_mem [0:WORDS-1];

    reg                  clk = 1'b0;
    reg                  rst = 1'b1;
    reg                  in_valid = 1'b0;
    reg  [N*WIDTH-1:0]   x = {N*WIDTH{1'b0}};
    wire                 out_valid;
    wire [N*WIDTH-1:0]   out;
    wire [N-1:0]         spike;
    wire [N*WIDTH-1:0]   v;

    wire signed [WIDTH-1:0] vth_w  = VTH;
    wire signed [WIDTH-1:0] vr_w   = VRESET;
    wire signed [WIDTH-1:0] rtau_w = RTAU;

    lif_array #(
        .N(N), .WIDTH(WIDTH), .LONG_WIDTH(LONG_WIDTH), .Q_IN(Q_IN), .Q_V(Q_V), .Q_OUT(Q_OUT),
        .SOFT_RESET(SOFT_RESET), .DECAY_INPUT(DECAY_INPUT), .IS_LIF(IS_LIF),
        .ROUND_NEAREST(ROUND_NEAREST), .BROKEN_ROUNDING(BROKEN_ROUNDING)
    ) dut (
        .clk(clk), .rst(rst), .v_threshold(vth_w), .v_reset(vr_w), .reciprocal_tau(rtau_w),
        .in_valid(in_valid), .x(x), .out_valid(out_valid), .out(out), .spike(spike), .v(v)
    );

    always #5 clk = ~clk;

    reg [8*1024-1:0] x_file, out_file, v_file, spk_file;
    integer t, i, k, mismatches, checked;
    reg [WIDTH-1:0] got_out, got_v;

    initial begin
        if (!$value$plusargs("x=%s", x_file) || !$value$plusargs("out=%s", out_file)
            || !$value$plusargs("v=%s", v_file) || !$value$plusargs("spikes=%s", spk_file)) begin
            $display("RESULT ERROR missing plusargs +x= +out= +v= +spikes=");
            $finish;
        end
        // Mark every word unknown first: a short file leaves x's, which fail.
        for (k = 0; k < WORDS; k = k + 1) begin
            x_mem[k] = {WIDTH{1'bx}};
            out_mem[k] = {WIDTH{1'bx}};
            v_mem[k] = {WIDTH{1'bx}};
            spk_mem[k] = 1'bx;
        end
        $readmemh(x_file, x_mem);
        $readmemh(out_file, out_mem);
        $readmemh(v_file, v_mem);
        $readmemh(spk_file, spk_mem);

        mismatches = 0;
        checked = 0;
        @(negedge clk);
        @(negedge clk);
        rst = 1'b0;
        for (t = 0; t < STEPS; t = t + 1) begin
            for (i = 0; i < N; i = i + 1)
                x[i*WIDTH +: WIDTH] = x_mem[t*N + i];
            in_valid = 1'b1;
            @(negedge clk);  // the step happened at the posedge in between
            in_valid = 1'b0;
            if (out_valid !== 1'b1) begin
                $display("MISMATCH t=%0d out_valid=%b", t, out_valid);
                mismatches = mismatches + 1;
            end
            for (i = 0; i < N; i = i + 1) begin
                got_out = out[i*WIDTH +: WIDTH];
                got_v = v[i*WIDTH +: WIDTH];
                checked = checked + 3;
                if (got_out !== out_mem[t*N + i]) begin
                    mismatches = mismatches + 1;
                    if (mismatches <= MAX_REPORT)
                        $display("MISMATCH t=%0d neuron=%0d field=out x=%h expected=%h got=%h",
                                 t, i, x_mem[t*N + i], out_mem[t*N + i], got_out);
                end
                if (got_v !== v_mem[t*N + i]) begin
                    mismatches = mismatches + 1;
                    if (mismatches <= MAX_REPORT)
                        $display("MISMATCH t=%0d neuron=%0d field=v x=%h expected=%h got=%h",
                                 t, i, x_mem[t*N + i], v_mem[t*N + i], got_v);
                end
                if (spike[i] !== spk_mem[t*N + i]) begin
                    mismatches = mismatches + 1;
                    if (mismatches <= MAX_REPORT)
                        $display("MISMATCH t=%0d neuron=%0d field=spikes x=%h expected=%h got=%h",
                                 t, i, x_mem[t*N + i], spk_mem[t*N + i], spike[i]);
                end
            end
        end
        if (mismatches == 0)
            $display("RESULT PASS mismatches=0 checked=%0d", checked);
        else
            $display("RESULT FAIL mismatches=%0d checked=%0d", mismatches, checked);
        $finish;
    end
endmodule

`default_nettype wire
