/*
 * golden firmware check: run the model C that Qualia generated on the inputs of a golden network
 * bundle and compare every output of every timestep with what golden expects.
 *
 * Build (C99, no other dependency):
 *   gcc -std=c99 -O2 -Wall -Wextra -I<dir of full_model.h> -I<bundle dir> main.c -o firmware_check
 *
 * full_model.h: the single-file model qualia-codegen writes for your deployment (defines input_t,
 *               output_t, cnn(), reset(), MODEL_INPUT_NUMBER_T, MODEL_OUTPUT_NUMBER_T).
 * vectors.h:    the C header of a bundle from `golden vectors generate --network DIR ...` (prefix "golden"):
 *               golden_in / golden_out, element (s, t, i) at (s * GOLDEN_STEPS + t) * SIZE + i,
 *               channels-last, raw fixed-point integers: exactly what cnn() reads and writes.
 *
 * Every sample starts from fresh neuron state (reset()), then runs GOLDEN_STEPS timesteps.
 * Exit status: 0 if every value matches, 1 if any differs (or if nothing was compared).
 */
#include <stdio.h>
#include <string.h>

#include "full_model.h"
#include "vectors.h"

#ifndef MAX_REPORTED
#define MAX_REPORTED 10 /* mismatches printed in full; all of them are counted */
#endif

/* Compile-time checks that the bundle was made for this model: a mismatch stops the build with
 * "size of array 'vectors_h_...' is negative", the array's name saying what differs. */
typedef char vectors_h_input_size_differs_from_input_t
    [sizeof(input_t) == GOLDEN_IN_SIZE * sizeof(MODEL_INPUT_NUMBER_T) ? 1 : -1];
typedef char vectors_h_output_size_differs_from_output_t
    [sizeof(output_t) == GOLDEN_OUT_SIZE * sizeof(MODEL_OUTPUT_NUMBER_T) ? 1 : -1];
typedef char vectors_h_input_bits_wider_than_MODEL_INPUT_NUMBER_T
    [GOLDEN_IN_BITS <= 8 * sizeof(MODEL_INPUT_NUMBER_T) ? 1 : -1];
typedef char vectors_h_output_bits_wider_than_MODEL_OUTPUT_NUMBER_T
    [GOLDEN_OUT_BITS <= 8 * sizeof(MODEL_OUTPUT_NUMBER_T) ? 1 : -1];

int main(void) {
  static input_t in;
  static output_t out;
  static MODEL_INPUT_NUMBER_T in_flat[GOLDEN_IN_SIZE];
  static MODEL_OUTPUT_NUMBER_T out_flat[GOLDEN_OUT_SIZE];
  unsigned long compared = 0, mismatches = 0;
  int s, t, ok;
  size_t i;

  for (s = 0; s < GOLDEN_SAMPLES; s++) {
    reset(); /* fresh neuron potentials for every sample */
    for (t = 0; t < GOLDEN_STEPS; t++) {
      const size_t step = (size_t)s * GOLDEN_STEPS + (size_t)t;

      for (i = 0; i < GOLDEN_IN_SIZE; i++) {
        in_flat[i] = (MODEL_INPUT_NUMBER_T)golden_in[step * GOLDEN_IN_SIZE + i];
      }
      memcpy(in, in_flat, sizeof in);
      cnn(in, out);
      memcpy(out_flat, out, sizeof out);

      for (i = 0; i < GOLDEN_OUT_SIZE; i++) {
        const long expected = (long)golden_out[step * GOLDEN_OUT_SIZE + i];
        const long got = (long)out_flat[i];
        compared++;
        if (got != expected) {
          mismatches++;
          if (mismatches <= MAX_REPORTED) {
            printf("MISMATCH sample %d t %d index %lu: expected %ld, got %ld\n", s, t, (unsigned long)i, expected,
                   got);
          }
        }
      }
    }
  }
  if (mismatches > MAX_REPORTED) {
    printf("... %lu more mismatches not shown\n", mismatches - MAX_REPORTED);
  }
  ok = compared > 0 && mismatches == 0; /* nothing compared proves nothing */
  printf("%s: %d samples, %d steps, %lu values compared, %lu mismatches\n", ok ? "PASS" : "FAIL", GOLDEN_SAMPLES,
         GOLDEN_STEPS, compared, mismatches);
  return ok ? 0 : 1;
}
